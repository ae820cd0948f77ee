// ListOps (Nangia & Bowman 2018) exactly as the Long Range Arena generates it
// (google-research/long-range-arena, lra_benchmarks/data/listops.py), plus LRA's TSV files
// and a fixed-vocabulary encoder for training.
//
//   using namespace wavspa;
//   Generator gen(42);
//   std::string e = data::generate_listops(gen, {.min_length = 10, .max_length = 60});
//   int label = data::evaluate_listops(e);                  // 0..9
//   data::evaluate_listops("[MAX 2 9 [MIN 4 7 ] 0 ]");       // 9
//
//   auto [train, val, test] = data::generate_listops_dataset(/*seed=*/0, 960, 20, 20, {});  // LRA: 96000, 2000, 2000
//   data::write_listops_tsv("out/basic_train.tsv", train);  // "Source\tTarget" header
//   data::ListOpsSplit back = data::read_listops_tsv("out/basic_train.tsv");
//   Tensor ids = data::encode_batch(back.sources, 2000);    // int64 (960, 2000), 0 = padding
//
// The grammar: an expression is a digit 0-9, or an operator token ("[MIN", "[MAX", "[MED",
// "[SM") followed by its arguments and a closing "]". MED is numpy's median truncated by int()
// (MED 1 2 3 4 = int(2.5) = 2); SM is the sum modulo 10.
//
// LRA writes each tree as nested binary pairs in parentheses: [MAX 2 9 ] is stored as
// "( ( ( [MAX 2 ) 9 ) ] )". We write the same by default (ListOpsOptions::parentheses);
// the evaluator and the encoder skip "(" and ")" so both forms read alike.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "data/dataset.h"

namespace wavspa::data {

// LRA's defaults (its flags max_depth, max_args, min_length, max_length).
struct ListOpsOptions {
  int64_t max_depth = 10;   // a node at depth >= max_depth is always a digit (the root is depth 1)
  int64_t max_args = 10;    // an operator takes 2..max_args arguments
  int64_t min_length = 500;   // keep a tree only if min_length < length < max_length, where
  int64_t max_length = 2000;  // length counts operators, digits and "]" (not parentheses)
  bool parentheses = true;  // write LRA's "( ( [MAX 2 ) 9 ) ] )" form; false: "[MAX 2 9 ]"
};

// One expression whose length lies strictly between the bounds (draws trees until one does;
// throws wavspa::Error if none does after many attempts, e.g. bounds that no tree can meet).
std::string generate_listops(Generator& gen, const ListOpsOptions& options);

// The value (0..9) of an expression in either form. A malformed expression throws
// wavspa::Error naming the token and its character offset.
int evaluate_listops(const std::string& expression);

struct ListOpsSplit {
  std::vector<std::string> sources;
  std::vector<int> targets;  // evaluate_listops(sources[i])
};

struct ListOpsDataset {
  ListOpsSplit train, val, test;
};

// n_train + n_val + n_test distinct expressions (no expression appears twice, in one split or
// across splits), split in generation order; the same seed gives the same data. The total is
// at most kMaxListOpsExamples. When the bounds admit fewer distinct expressions than asked
// for, the draws stop finding new ones, and after kListOpsStaleDraws draws in a row without a
// new expression this throws, saying how many it found. `progress`, if given, is called with
// (expressions so far, total) every kListOpsProgressEvery new expressions.
inline constexpr int64_t kMaxListOpsExamples = 100'000'000;
inline constexpr int64_t kListOpsStaleDraws = 200'000;
inline constexpr int64_t kListOpsProgressEvery = 1'000'000;
ListOpsDataset generate_listops_dataset(uint64_t seed, int64_t n_train, int64_t n_val,
                                        int64_t n_test, const ListOpsOptions& options,
                                        const std::function<void(int64_t, int64_t)>& progress = nullptr);

// LRA's file: a "Source\tTarget" header, then one "expression\tlabel" row per example, rows
// ending in "\r\n" as Python's csv.writer writes them. The reader accepts "\n" or "\r\n" and
// throws wavspa::Error naming "path:line" for a bad header, a row without exactly one tab,
// a label that is not an integer in 0..9, or an expression that does not parse.
void write_listops_tsv(const std::string& path, const ListOpsSplit& split);
ListOpsSplit read_listops_tsv(const std::string& path);

// The fixed vocabulary (LRA builds one from the training file; ours never changes):
//   0 = padding, 1..10 = digits 0..9, 11 = "[MIN", 12 = "[MAX", 13 = "[MED", 14 = "[SM", 15 = "]".
// Tokens are split on whitespace; "(" and ")" are skipped. An unknown token throws.
int64_t listops_vocab_size();  // 16
std::vector<int64_t> encode_listops(const std::string& expression);
// int64 (B, max_len): each row the encoded expression, cut at max_len or padded with 0.
Tensor encode_batch(const std::vector<std::string>& expressions, int64_t max_len);

// The training form (data/dataset.h): encode_listops ids cut to max_len (LRA: 2000),
// vocabulary 16, 10 classes.
TokenDataset listops_tokens(const ListOpsSplit& split, int64_t max_len, const std::string& name);

}  // namespace wavspa::data
