// Shapes and strides (both in elements), and the arithmetic on them that every layer needs.
//
//   Shape s = broadcast_shapes({4, 1, 3}, {5, 1}, "add");   // (4, 5, 3); "add" names it in errors
//   shape_numel(s);                                          // 60
//   contiguous_strides(s);                                   // {15, 3, 1}
//   shape_str(s);                                            // "(4, 5, 3)"
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wavspa {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);                     // "(2, 3, 4)"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& shape);               // row-major
// Wraps a possibly negative dim into [0, ndim); `op` names the caller in the error.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);
// NumPy broadcasting of two shapes; throws naming `op` and both shapes if they don't broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Strides of a view of (shape, strides) reshaped to `target`, or empty if it needs a copy.
std::vector<int64_t> view_strides(const Shape& shape, const std::vector<int64_t>& strides,
                                  const Shape& target);
// Resolves a single -1 in `target` against numel; throws naming `op` if impossible.
Shape infer_shape(const Shape& target, int64_t numel, const char* op);

// A shape seen as (outer, size, inner) around one dim: the products of the dims before it,
// the dim itself, the product of the dims after it.
struct AroundDim {
  int64_t outer = 1, size = 1, inner = 1;
};
AroundDim around_dim(const Shape& shape, int64_t dim);

// Dims with their strides, in iteration order (the last dim varies fastest).
struct StridedDims {
  Shape shape, strides;
};
// Merges neighbours that are contiguous with each other (strides[i] == strides[i+1] *
// shape[i+1]) into one dim and drops dims of size 1: fewer, longer loops over the same
// elements in the same order.
StridedDims coalesce_dims(const StridedDims& d);

// A tensor's dims (shape, strides) split in two, each part in its original order: the dims
// listed in `reduced` and the others, `kept` (a reduction's outputs run over kept, each
// output over reduced). Neither part is coalesced.
struct KeptAndReduced {
  StridedDims kept, reduced;
};
KeptAndReduced split_reduced_dims(const Shape& shape, const Shape& strides,
                                  const std::vector<int64_t>& reduced);

}  // namespace wavspa
