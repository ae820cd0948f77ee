#include "ops/shape.h"

#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/factory.h"

namespace wavspa {

using namespace ops_detail;
using G = std::vector<Tensor>;

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim_in) {
  WAVSPA_CHECK(!tensors.empty(), "concat: needs at least one tensor");
  const Tensor& first = tensors[0];
  check_defined("concat", first);
  const int64_t dim = wrap_dim(dim_in, first.dim(), "concat");
  Shape out_shape = first.shape();
  out_shape[dim] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    check_same_placement("concat", first, t);
    bool same = t.dim() == first.dim();
    for (int64_t d = 0; same && d < t.dim(); ++d)
      same = d == dim || t.shape()[d] == first.shape()[d];
    WAVSPA_CHECK(same, "concat: tensor ", i, " has shape ", shape_str(t.shape()),
                 ", incompatible with tensor 0's ", shape_str(first.shape()),
                 " (all dims but ", dim, " must match)");
    out_shape[dim] += t.shape()[dim];
  }
  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device());
  std::vector<int64_t> starts;
  int64_t at = 0;
  for (const Tensor& t : tensors) {
    starts.push_back(at);
    Shape st = out.strides();
    Tensor slot = out.as_strided(t.shape(), st, at * st[dim]);
    if (t.numel()) backend_of(t).copy(t, slot);
    at += t.shape()[dim];
  }
  if (autograd::needs_grad(tensors)) {
    std::vector<int64_t> sizes;
    for (const Tensor& t : tensors) sizes.push_back(t.shape()[dim]);
    autograd::record("ConcatBackward", tensors, out, {}, [sizes, starts, dim](const Tensor& g) {
      G grads;
      for (size_t i = 0; i < sizes.size(); ++i) grads.push_back(g.narrow(dim, starts[i], sizes[i]));
      return grads;
    });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  WAVSPA_CHECK(!tensors.empty(), "stack: needs at least one tensor");
  check_defined("stack", tensors[0]);
  const int64_t d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  for (size_t i = 0; i < tensors.size(); ++i) {
    WAVSPA_CHECK(tensors[i].defined() && tensors[i].shape() == tensors[0].shape(),
                 "stack: tensor ", i, " has shape ",
                 tensors[i].defined() ? shape_str(tensors[i].shape()) : "undefined",
                 ", expected ", shape_str(tensors[0].shape()));
    parts.push_back(tensors[i].unsqueeze(d));
  }
  return concat(parts, d);
}

std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim) {
  check_defined("split", x);
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  WAVSPA_CHECK(size > 0, "split: size must be positive, got ", size);
  std::vector<Tensor> out;
  for (int64_t at = 0; at < x.shape()[d]; at += size)
    out.push_back(x.narrow(d, at, std::min(size, x.shape()[d] - at)));
  if (out.empty()) out.push_back(x.narrow(d, 0, 0));
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  check_defined("split", x);
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    WAVSPA_CHECK(s >= 0, "split: negative size in ", sizes);
    total += s;
  }
  WAVSPA_CHECK(total == x.shape()[d], "split: sizes ", sizes, " add up to ", total,
               " but dim ", d, " of ", shape_str(x.shape()), " has ", x.shape()[d]);
  std::vector<Tensor> out;
  int64_t at = 0;
  for (int64_t s : sizes) {
    out.push_back(x.narrow(d, at, s));
    at += s;
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  check_defined("chunk", x);
  WAVSPA_CHECK(chunks > 0, "chunk: number of chunks must be positive, got ", chunks);
  const int64_t d = wrap_dim(dim, x.dim(), "chunk");
  const int64_t size = std::max<int64_t>(1, (x.shape()[d] + chunks - 1) / chunks);
  return split(x, size, d);
}

namespace {

// Source index, along a dim of `size`, of each position of the padded dim (-pad_left ...).
std::vector<int64_t> pad_indices(PadMode mode, int64_t size, int64_t left, int64_t right) {
  std::vector<int64_t> idx;
  for (int64_t p = -left; p < size + right; ++p) {
    int64_t i = p;
    switch (mode) {
      case PadMode::Reflect: {  // period 2(size - 1): dcb|abcd|cba
        int64_t period = 2 * (size - 1);
        i = period == 0 ? 0 : ((p % period) + period) % period;
        if (i >= size) i = period - i;
        break;
      }
      case PadMode::Symmetric: {  // period 2 size: cba|abcd|dcb
        int64_t period = 2 * size;
        i = ((p % period) + period) % period;
        if (i >= size) i = period - 1 - i;
        break;
      }
      case PadMode::Replicate: i = p < 0 ? 0 : (p >= size ? size - 1 : p); break;
      case PadMode::Circular: i = ((p % size) + size) % size; break;
      case PadMode::Constant: break;
    }
    idx.push_back(i);
  }
  return idx;
}

const char* pad_mode_name(PadMode m) {
  switch (m) {
    case PadMode::Constant: return "constant";
    case PadMode::Reflect: return "reflect";
    case PadMode::Symmetric: return "symmetric";
    case PadMode::Replicate: return "replicate";
    case PadMode::Circular: return "circular";
  }
  return "?";
}

}  // namespace

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, PadMode mode, double value) {
  check_defined("pad", x);
  check_computable("pad", x);  // the extension modes gather through index_select
  WAVSPA_CHECK(pads.size() % 2 == 0 && (int64_t)pads.size() / 2 <= x.dim(),
               "pad: expected (left, right) pairs for at most ", x.dim(), " dims, got ", pads);
  for (int64_t p : pads) WAVSPA_CHECK(p >= 0, "pad: negative padding in ", pads);
  const int64_t npad = (int64_t)pads.size() / 2;
  if (mode == PadMode::Constant) {
    Shape shape = x.shape(), offsets(x.dim(), 0);
    for (int64_t j = 0; j < npad; ++j) {
      int64_t d = x.dim() - 1 - j;
      shape[d] += pads[2 * j] + pads[2 * j + 1];
      offsets[d] = pads[2 * j];
    }
    Tensor out = full(shape, value, x.dtype(), x.device());
    int64_t off = 0;
    for (int64_t d = 0; d < x.dim(); ++d) off += offsets[d] * out.strides()[d];
    if (x.numel()) backend_of(x).copy(x, out.as_strided(x.shape(), out.strides(), off));
    if (autograd::needs_grad({x})) {
      Shape xs = x.shape();
      autograd::record("PadBackward", {x}, out, {}, [xs, offsets](const Tensor& g) {
        Tensor r = g;
        for (int64_t d = 0; d < (int64_t)xs.size(); ++d) r = r.narrow(d, offsets[d], xs[d]);
        return G{r};
      });
    }
    return out;
  }
  // Other modes gather rows with index_select, one padded dim at a time: the gradient is
  // index_select's scatter-add, which folds each padded sample back onto its source.
  Tensor out = x;
  for (int64_t j = 0; j < npad; ++j) {
    int64_t d = x.dim() - 1 - j, size = x.shape()[d];
    int64_t left = pads[2 * j], right = pads[2 * j + 1];
    if (left == 0 && right == 0) continue;
    WAVSPA_CHECK(size > 0, "pad: cannot ", pad_mode_name(mode), "-pad an empty dim ", d);
    if (mode == PadMode::Reflect)
      WAVSPA_CHECK(left < size && right < size, "pad: reflect padding (", left, ", ", right,
                   ") must be smaller than the dim's size ", size, " (dim ", d, ")");
    if (mode == PadMode::Symmetric || mode == PadMode::Circular)
      WAVSPA_CHECK(left <= size && right <= size, "pad: ", pad_mode_name(mode), " padding (",
                   left, ", ", right, ") must not exceed the dim's size ", size, " (dim ", d, ")");
    auto idx = pad_indices(mode, size, left, right);
    out = index_select(out, d, from_vector(idx, {}, x.device()));
  }
  return out;
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined("index_select", x);
  Tensor idx = as_index("index_select", index);
  WAVSPA_CHECK(idx.dim() <= 1, "index_select: index must be 1-D, got ", shape_str(idx.shape()));
  WAVSPA_CHECK(idx.device() == x.device(), "index_select: index on ", idx.device(),
               ", input on ", x.device());
  const int64_t d = wrap_dim(dim, x.dim(), "index_select");
  idx = idx.reshape({-1});
  const int64_t size = x.shape()[d];
  if (idx.device().is_cpu()) {
    const int64_t* p = idx.data<int64_t>();
    for (int64_t i = 0; i < idx.numel(); ++i)
      WAVSPA_CHECK(p[i] >= 0 && p[i] < size, "index_select: index ", p[i], " at position ", i,
                   " is out of range for dim ", d, " of size ", size, " (shape ",
                   shape_str(x.shape()), ")");
  }
  Shape out_shape = x.shape();
  out_shape[d] = idx.numel();
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (out.numel()) backend_of(x).index_select(contiguous_raw(x), d, idx, out);
  if (autograd::needs_grad({x})) {
    Tensor sx = x.detach();
    autograd::record("IndexSelectBackward", {x}, out, {idx}, [sx, d, idx](const Tensor& g) {
      Tensor gx = zeros_raw(sx.shape(), g.dtype(), g.device());
      if (g.numel()) backend_of(g).index_add(gx, d, idx, contiguous_raw(g));
      return G{gx};
    });
  }
  return out;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined("gather", x);
  Tensor idx = as_index("gather", index);
  WAVSPA_CHECK(idx.device() == x.device(), "gather: index on ", idx.device(), ", input on ", x.device());
  const int64_t d = wrap_dim(dim, x.dim(), "gather");
  bool fits = idx.dim() == x.dim();
  for (int64_t i = 0; fits && i < x.dim(); ++i) fits = i == d || idx.shape()[i] <= x.shape()[i];
  WAVSPA_CHECK(fits, "gather: index ", shape_str(idx.shape()), " must have input ",
               shape_str(x.shape()), "'s number of dims and no larger sizes outside dim ", d);
  if (idx.device().is_cpu()) {
    const int64_t* p = idx.data<int64_t>();
    for (int64_t i = 0; i < idx.numel(); ++i)
      WAVSPA_CHECK(p[i] >= 0 && p[i] < x.shape()[d], "gather: index ", p[i],
                   " is out of range for dim ", d, " of size ", x.shape()[d]);
  }
  Tensor out = Tensor::empty(idx.shape(), x.dtype(), x.device());
  if (out.numel()) backend_of(x).gather(contiguous_raw(x), d, idx, out);
  if (autograd::needs_grad({x})) {
    Shape xs = x.shape();
    autograd::record("GatherBackward", {x}, out, {idx}, [xs, d, idx](const Tensor& g) {
      Tensor gx = zeros_raw(xs, g.dtype(), g.device());
      if (g.numel()) backend_of(g).scatter_add(gx, d, idx, contiguous_raw(g));
      return G{gx};
    });
  }
  return out;
}

Tensor flip(const Tensor& x, const std::vector<int64_t>& dims) {
  check_defined("flip", x);
  check_computable("flip", x);
  if (dims.empty()) return x;
  Tensor out = x;
  {
    // The reversal is a row gather (index_select); its adjoint is the same reversal, so the
    // backward below flips the gradient rather than scattering it back through index_select's
    // general backward (a sort and an indexed add per dim).
    NoGradGuard no_grad;
    for (int64_t dim : dims) {
      int64_t d = wrap_dim(dim, x.dim(), "flip"), n = x.shape()[d];
      std::vector<int64_t> idx(n);
      for (int64_t i = 0; i < n; ++i) idx[i] = n - 1 - i;
      out = index_select(out, d, from_vector(idx, {}, x.device()));
    }
  }
  if (autograd::needs_grad({x}))
    autograd::record("FlipBackward", {x}, out, {}, [dims](const Tensor& g) { return G{flip(g, dims)}; });
  return out;
}

Tensor roll(const Tensor& x, const std::vector<int64_t>& shifts, const std::vector<int64_t>& dims) {
  check_defined("roll", x);
  check_computable("roll", x);
  if (dims.empty()) {
    WAVSPA_CHECK(shifts.size() == 1, "roll: without dims, give exactly one shift, got ", shifts);
    return roll(x.reshape({-1}), shifts, {0}).reshape(x.shape());
  }
  WAVSPA_CHECK(shifts.size() == dims.size(), "roll: ", shifts.size(), " shifts for ",
               dims.size(), " dims");
  Tensor out = x;
  for (size_t j = 0; j < dims.size(); ++j) {
    int64_t d = wrap_dim(dims[j], x.dim(), "roll"), n = x.shape()[d];
    if (n == 0) continue;
    std::vector<int64_t> idx(n);
    for (int64_t i = 0; i < n; ++i) idx[i] = (((i - shifts[j]) % n) + n) % n;
    out = index_select(out, d, from_vector(idx, {}, x.device()));
  }
  return out;
}

Tensor repeat(const Tensor& x, const std::vector<int64_t>& repeats) {
  check_defined("repeat", x);
  WAVSPA_CHECK((int64_t)repeats.size() >= x.dim(), "repeat: ", repeats.size(),
               " repeats for a tensor with ", x.dim(), " dims (need at least one per dim)");
  for (int64_t r : repeats) WAVSPA_CHECK(r >= 0, "repeat: negative count in ", repeats);
  const int64_t nd = (int64_t)repeats.size(), lead = nd - x.dim();
  // (s0, s1) x (r0, r1): view as (1, s0, 1, s1), expand to (r0, s0, r1, s1), reshape.
  Shape interleaved, expanded, final_shape;
  for (int64_t i = 0; i < nd; ++i) {
    int64_t s = i < lead ? 1 : x.shape()[i - lead];
    interleaved.insert(interleaved.end(), {1, s});
    expanded.insert(expanded.end(), {repeats[i], s});
    final_shape.push_back(repeats[i] * s);
  }
  return x.reshape(interleaved).expand(expanded).reshape(final_shape);
}

}  // namespace wavspa
