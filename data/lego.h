// LEGO (Zhang et al. 2022, "Unveiling Transformers with LEGO"): a chain of sign assignments
// over distinct variables, presented in shuffled order; the label of each clause is the value
// (+1 or -1) its variable ends up with. Training on short chains and testing on longer ones
// measures length extrapolation.
//
//   using namespace wavspa;
//   Generator gen(3);
//   data::LegoExample ex = data::generate_lego(gen, {.chain_length = 4});
//   // ex.source: "u = +j ; j = -q ; y = -1 ; q = -y"   ex.values: {-1, -1, -1, +1}
//   data::solve_lego(ex.source);                        // the same values, recomputed
//
// The chain: v0 = s0 1, v1 = s1 v0, ..., each s a random sign, the variable names distinct
// random letters a..z. Clauses are separated by " ; ", tokens by spaces.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/random.h"
#include "data/dataset.h"

namespace wavspa::data {

struct LegoOptions {
  int64_t chain_length = 6;  // 1..26 clauses
  bool shuffle = true;       // present the clauses in random order (the task's difficulty)
};

struct LegoExample {
  std::string source;
  std::vector<int> values;  // +1 or -1 for each clause, in presented order
};

LegoExample generate_lego(Generator& gen, const LegoOptions& options);
// Resolves every variable of a source and returns the values in clause order. Malformed
// text, an unknown or repeated variable, or a cycle is a wavspa::Error naming the clause.
std::vector<int> solve_lego(const std::string& source);

struct LegoDataset {
  std::vector<LegoExample> train, val, test;
};
// train and val use train_length; test uses test_length (longer, for extrapolation).
LegoDataset generate_lego_dataset(uint64_t seed, int64_t n_train, int64_t n_val, int64_t n_test,
                                  int64_t train_length, int64_t test_length);

// TSV with header "Source\tTarget"; Target lists the values ("+1 -1 ...") in clause order.
void write_lego_tsv(const std::string& path, const std::vector<LegoExample>& examples);
std::vector<LegoExample> read_lego_tsv(const std::string& path);

// The training form: one token per letter, "=", "+", "-", "1" and ";" (ids 1..26 for a..z,
// 27 "=", 28 "+", 29 "-", 30 "1", 31 ";", 0 padding; vocabulary 32), so a clause "b = -a"
// is the four tokens b = - a. Each clause's label sits on its first token (the variable):
// class 1 for +1, 0 for -1; every other position is kIgnoreLabel. seq_len is the longest
// chain's 5 * length - 1 unless max_len (> 0) is given.
TokenDataset lego_tokens(const std::vector<LegoExample>& examples, int64_t max_len, const std::string& name);

}  // namespace wavspa::data
