// The differentiable primitives that every wavelet transform in ops/wavelet*.cpp is composed
// of, and the boundary maps they run on. Internal to ops/ (users include ops/wavelet.h).
//
//   using namespace wavspa::wavelet_detail;                          // internal names
//   AxisView v = axis_view("dwt", x, axis);                          // x as (A, N, C)
//   auto map = extension_map(WaveletMode::Symmetric, v.N, F - 1, v.N + 2 * F - 2);
//   std::vector<Tensor> bands = analysis(to_3d(x, v), map, w, 1, L); // nf of (A, L, C)
//
// analysis and synthesis are mutually adjoint for one map, so each is the other's backward
// (plus the filter correlation); extend's backward is its transpose, the fold.
#pragma once

#include <memory>
#include <vector>

#include "backends/backend.h"
#include "core/tensor.h"
#include "ops/wavelet.h"

namespace wavspa::wavelet_detail {

// ---- the (A, N, C) view the primitives work on ----------------------------------------------

// x viewed as (A, N, C) around `axis`.
struct AxisView {
  Shape shape;  // x's shape
  int64_t axis, A, N, C;
};
// Checks that x is a floating tensor of at least one dim (bfloat16 on CUDA only).
AxisView axis_view(const char* op, const Tensor& x, int64_t axis);
Tensor to_3d(const Tensor& x, const AxisView& v);
// t (A, L, C) back in v's layout, with L along v.axis.
Tensor from_3d(const Tensor& t, const AxisView& v);

// A filter argument: floating, (F) or (F, C), at least 2 taps; `what` names it in errors.
void check_filter(const char* op, const Tensor& f, const char* what);
// The dtype the filters (and their gradient) take for a signal of dtype `signal`: its own,
// float32 for bfloat16 (the kernels compute in float32 and keep the taps at full precision).
inline DType filter_dtype(DType signal) { return signal == kBFloat16 ? kFloat32 : signal; }

// ---- boundary maps ------------------------------------------------------------------------

// Padded row p = extended sample p - left (p in [0, total)) of a signal of n samples, in
// pywt's extension `mode` (periodization: an odd signal first repeats its last sample, then
// wraps with period n + 1). Padded rows inside the signal are the identity, so
// extension_map(any mode, n, 0, n) is the identity map. The same arguments return the same
// map, whose id lets a backend keep its device copy. With keep >= 0 the map is of the first
// `keep` rows only (its n is keep): the terms on rows [keep, n) are dropped, as if those rows
// were zero. Synthesis through it gives the first keep rows of the full synthesis (a
// cropped reconstruction, written as such), and analysis through it reads a keep-row signal
// as the full one with zero rows after it (its adjoint).
std::shared_ptr<const RowMap> extension_map(WaveletMode mode, int64_t n, int64_t left,
                                            int64_t total, int64_t keep = -1);

// ---- the primitives -------------------------------------------------------------------------

// x (A, map.n, C) -> (A, map.padded_rows(), C), the extension materialised.
Tensor extend(const Tensor& x, std::shared_ptr<const RowMap> map);

// Analysis of x (A, map.n, C) with filters w (nf, K, Cw), in filter_dtype(x), to nf bands
// (A, L, C) of x's dtype, each its own
// contiguous tensor (one autograd node for all): band f, row o =
// sum_k w[f, k, c] * xe[2 o + k + start], xe = the map applied to x.
std::vector<Tensor> analysis(const Tensor& x, std::shared_ptr<const RowMap> map, const Tensor& w,
                int64_t start, int64_t L);

// Synthesis of nf planes (A, L, C) to (A, map.n, C): the adjoint of analysis with the same
// map, whose transpose wraps the padded rows onto the output (periodization) or passes them
// through. With `base` defined ((A, map.n, C), the planes' dtype) the result is base + the
// synthesis, the bits of add(base, synthesis(...)) from one kernel; base's gradient is the
// output's.
Tensor synthesis(const std::vector<Tensor>& planes, const Tensor& w, int64_t start,
                 std::shared_ptr<const RowMap> map, const Tensor& base = Tensor());

}  // namespace wavspa::wavelet_detail
