// Shape ops that copy: joining, splitting, padding, indexing, flipping. All differentiable.
//
//   Tensor c = concat({a, b}, 1);
//   auto parts = chunk(x, 3, -1);            // views
//   Tensor p = pad(x, {2, 2}, PadMode::Reflect);   // last dim, left 2, right 2
//   Tensor r = index_select(x, 0, idx);
#pragma once

#include <vector>

#include "core/tensor.h"

namespace wavspa {

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
// Views of consecutive pieces along dim: of `size` each (the last may be shorter), or of
// the given sizes (which must add up to the dim's size).
std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);

enum class PadMode { Constant, Reflect, Symmetric, Replicate, Circular };
// `pads` as in torch.nn.functional.pad: (left, right) of the last dim first, then of the
// dim before it, ... Reflect mirrors without repeating the edge (dcb|abcd|cba), Symmetric
// repeats it (cba|abcd|dcb), Replicate repeats the edge value, Circular wraps around.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, PadMode mode = PadMode::Constant,
           double value = 0.0);

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// out[i][j][k] = x[i][index[i][j][k]][k] for dim = 1, as torch.gather.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor flip(const Tensor& x, const std::vector<int64_t>& dims);
// Rolls elements along dims (wrapping); with no dims, the flattened tensor.
Tensor roll(const Tensor& x, const std::vector<int64_t>& shifts,
            const std::vector<int64_t>& dims = {});
// Tiles x: repeats[i] copies along dim i (more repeats than dims adds leading dims).
Tensor repeat(const Tensor& x, const std::vector<int64_t>& repeats);

}  // namespace wavspa
