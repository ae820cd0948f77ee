// The op table: one entry per user-facing op (every function of ops/*.h that returns tensors,
// every computing method of Tensor), with a generator of sample inputs and the op's
// properties. tests/ops/test_op_table.cpp runs, for every entry and every sample:
//
//   - the float64 finite-difference gradcheck (differentiable ops), and for the others a
//     check that no graph is recorded;
//   - dtype checks: integer inputs are refused with a wavspa::Error naming the op (or, where
//     the op takes them, give the float64 result exactly); mixed float32/float64 and
//     bfloat16/float32 inputs are refused naming both; bfloat16 CPU inputs are refused naming
//     the op (Bf16::Cuda, Bf16::Refused) or moved exactly (Bf16::Anywhere);
//   - with CUDA=1 and a GPU: CPU-vs-CUDA parity of the outputs and of every input's gradient,
//     in float32 and float64, element by element within atol + rtol * |cpu| (and of the
//     int64 outputs, exactly, for ops that take integers), and inputs on two devices refused;
//     then a bfloat16 pass: the op on CUDA in bfloat16 against the float32 CPU result on the
//     same bfloat16-rounded inputs, within `bf16` tolerances;
//   - coverage: an op declared in a header but missing here fails a test, and docs/ops.md's op
//     tables are generated from these entries (a test fails when they differ).
//
// Adding an op: write an entry in the family file (tests/ops/op_table_<family>.cpp):
//
//   OpInfo op("softplus", "ops/elementwise.h");
//   op.backward = "fused `BinaryOp::SoftplusBackward` on (g, x)";
//   op.value_test = "activations match their formulas";   // a doctest case name
//   op.samples = [] {
//     Sizes size;
//     return std::vector<Sample>{
//         {"random shape", [](const In& x) { return softplus(x[0], 2.0, 3.0); }, {rn({size(1, 4), 3})}},
//         {"transposed", [](const In& x) { return softplus(x[0].t()); }, {rn({3, 4})}}};
//   };
//   table.push_back(op);
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tests/helpers.h"

namespace wavspa::test {

using OpFn = std::function<Tensor(const In&)>;

// One call of an op. `fn` receives `inputs` followed by `consts`.
struct Sample {
  std::string what;  // "broadcast (a, b, c) by (b, 1)", "transposed", "zero-size", ...
  OpFn fn;
  In inputs;       // float64 leaves: perturbed by gradcheck, their gradients compared
  In consts = {};  // held fixed: indices, targets, masks, conditions
};

// What an op does with integer inputs.
enum class Ints {
  Refused,  // throws a wavspa::Error naming the op and the dtype
  Exact,    // computes in int64 and equals the float64 result on the same integer values
  Skip,     // not checked (say why in the entry)
};

// What an op does with bfloat16 inputs (docs/ops.md's "bfloat16" column).
enum class Bf16 {
  Cuda,      // computed on CUDA (float32 registers, bfloat16 stores); a CPU input is refused naming the op
  Anywhere,  // only moves bytes (views, copies, joins): exact on both devices
  Refused,   // no bfloat16 version on any device: refused naming the op (FFTs, wavelets)
};

struct OpInfo {
  std::string name;        // as declared: "add", "operator+", "Tensor::reshape"
  std::string header;      // where it is declared
  std::string backward;    // for docs/ops.md: how its gradient is computed
  std::string value_test;  // a doctest case that checks forward values against loops or formulas
  bool differentiable = true;
  bool cuda = true;  // a CUDA build computes it (checked against the CPU)
  Ints ints = Ints::Refused;
  bool mixed_dtypes_refused = true;       // float32 with float64 inputs throws (samples with two floating inputs)
  bool promotes = false;                  // mixed floating inputs meet at promote_types (core/dtype.h) instead
  bool mixed_devices_refused = true;      // a CUDA input with CPU ones throws (samples with two inputs)
  std::string error_name;                 // the op's name in its error messages; defaults to `name`
  Tol f32{1e-5, 1e-4}, f64{1e-10, 1e-9};  // CPU-vs-CUDA tolerances
  Bf16 bf16 = Bf16::Cuda;
  // bfloat16 on CUDA against float32 on the CPU (same rounded inputs): a few bfloat16 ulps
  // (2^-8 relative each) for the output's rounding and those of intermediate results.
  Tol bf16_tol{1e-2, 2e-2};
  std::function<std::vector<Sample>()> samples;

  OpInfo(std::string name_, std::string header_) : name(std::move(name_)), header(std::move(header_)) {}
};

// An entry with its text and samples; the caller sets the other properties on the result.
// Marks an op whose two floating inputs of different dtypes compute in promote_types of the
// pair (the binary elementwise ops, where and the comparisons) instead of being refused.
inline void promoting(OpInfo& op) {
  op.promotes = true;
  op.mixed_dtypes_refused = false;
}

inline OpInfo entry(const std::string& name, const std::string& header, const std::string& backward,
                    const std::string& value_test, std::function<std::vector<Sample>()> samples) {
  OpInfo op(name, header);
  op.backward = backward;
  op.value_test = value_test;
  op.samples = std::move(samples);
  return op;
}

// Every entry, in docs/ops.md order. Samples are drawn from a generator seeded per op.
const std::vector<OpInfo>& op_table();

// The families (tests/ops/op_table_<family>.cpp).
void add_elementwise_ops(std::vector<OpInfo>& table);
void add_reduce_linalg_nn_ops(std::vector<OpInfo>& table);
void add_shape_ops(std::vector<OpInfo>& table);
void add_wavelet_fft_ops(std::vector<OpInfo>& table);
void add_factory_ops(std::vector<OpInfo>& table);

// Several outputs as one tensor (each flattened, then concatenated), so that one comparison
// and one gradcheck cover all of them.
inline Tensor flat(const std::vector<Tensor>& parts) {
  std::vector<Tensor> rows;
  for (const Tensor& p : parts) rows.push_back(p.reshape({-1}));
  return concat(rows, 0);
}

// Integer (int64) tensors of a shape with values in [lo, hi).
inline Tensor ints(const Shape& shape, int64_t lo, int64_t hi) { return randint(lo, hi, shape, kInt64); }

}  // namespace wavspa::test
