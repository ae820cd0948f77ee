// The wavelet primitives (see ops/wavelet_primitives.h): boundary extension as a sparse
// row map, and the three differentiable primitives built on it,
//   analysis  (stride-2 correlation with a bank of filters over a boundary-extended signal),
//   synthesis (its adjoint: stride-2 transposed correlation, wrapped or not),
//   extend    (the extension materialised; its adjoint folds padding back onto the samples).
// The boundary extension of a mode is a RowMap (padded rows of at most three terms) that the
// kernels apply on the fly. Each primitive's backward is another primitive plus, for the
// filter banks, the filter correlation, so the transforms composed of them get exact
// gradients for the signal and the filters without code of their own.
#include "ops/wavelet_primitives.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>

#include "core/names.h"
#include "ops/common.h"

namespace wavspa {

using namespace ops_detail;

// ---- modes ----------------------------------------------------------------------------------

namespace {
const std::pair<WaveletMode, const char*> kModeNames[] = {
    {WaveletMode::Zero, "zero"},
    {WaveletMode::Constant, "constant"},
    {WaveletMode::Symmetric, "symmetric"},
    {WaveletMode::Reflect, "reflect"},
    {WaveletMode::Periodic, "periodic"},
    {WaveletMode::Smooth, "smooth"},
    {WaveletMode::Antisymmetric, "antisymmetric"},
    {WaveletMode::Antireflect, "antireflect"},
    {WaveletMode::Periodization, "periodization"},
};
}  // namespace

WaveletMode wavelet_mode(const std::string& name) {
  std::string lower = name;
  for (char& c : lower) c = (char)std::tolower((unsigned char)c);
  return value_of_name(kModeNames, lower, "wavelet mode");
}

const char* wavelet_mode_name(WaveletMode mode) { return name_of_value(kModeNames, mode); }

namespace wavelet_detail {

using G = std::vector<Tensor>;

// ---- the (A, N, C) view and shared checks ---------------------------------------------------

AxisView axis_view(const char* op, const Tensor& x, int64_t axis) {
  check_floating(op, x);  // bfloat16: CUDA only (check_computable says so on the CPU)
  WAVSPA_CHECK(x.dim() >= 1, op, ": needs at least a 1-D signal, got a 0-d tensor");
  AxisView v;
  v.shape = x.shape();
  v.axis = wrap_dim(axis, x.dim(), op);
  v.A = 1;
  v.C = 1;
  for (int64_t d = 0; d < v.axis; ++d) v.A *= v.shape[d];
  for (int64_t d = v.axis + 1; d < x.dim(); ++d) v.C *= v.shape[d];
  v.N = v.shape[v.axis];
  return v;
}

Tensor to_3d(const Tensor& x, const AxisView& v) { return x.reshape({v.A, v.N, v.C}); }

Tensor from_3d(const Tensor& t, const AxisView& v) {
  Shape s = v.shape;
  s[v.axis] = t.shape()[1];
  return t.reshape(s);
}

void check_filter(const char* op, const Tensor& f, const char* what) {
  check_floating(op, f);
  WAVSPA_CHECK(f.dim() == 1 || f.dim() == 2, op, ": ", what, " must be (F) or (F, C), got ",
               shape_str(f.shape()));
  WAVSPA_CHECK(f.shape()[0] >= 2, op, ": ", what, " needs at least 2 taps, got ",
               shape_str(f.shape()));
}

// ---- boundary maps --------------------------------------------------------------------------

namespace {

// The source terms of extended sample n (any integer) of a signal of length N.
ExtendRow extension_row(WaveletMode mode, int64_t N, int64_t n) {
  ExtendRow r;
  auto one = [&](int64_t i, double c) { r.src[0] = i; r.coef[0] = c; };
  auto floor_mod = [](int64_t a, int64_t m) { return ((a % m) + m) % m; };
  if (n >= 0 && n < N) {
    one(n, 1.0);
    return r;
  }
  switch (mode) {
    case WaveletMode::Zero: break;
    case WaveletMode::Constant: one(n < 0 ? 0 : N - 1, 1.0); break;
    case WaveletMode::Periodic: one(floor_mod(n, N), 1.0); break;
    case WaveletMode::Periodization: {  // an odd signal repeats its last sample first
      one(std::min(floor_mod(n, N + N % 2), N - 1), 1.0);
      break;
    }
    case WaveletMode::Symmetric: {  // ... x1 x0 | x0 x1 ... x(N-1) | x(N-1) x(N-2) ...
      int64_t m = floor_mod(n, 2 * N);
      one(m < N ? m : 2 * N - 1 - m, 1.0);
      break;
    }
    case WaveletMode::Reflect: {  // ... x2 x1 | x0 x1 ... x(N-1) | x(N-2) ...
      if (N == 1) { one(0, 1.0); break; }
      int64_t m = floor_mod(n, 2 * N - 2);
      one(m < N ? m : 2 * N - 2 - m, 1.0);
      break;
    }
    case WaveletMode::Antisymmetric: {  // ... -x1 -x0 | x0 ... x(N-1) | -x(N-1) ...
      int64_t m = floor_mod(n, 2 * N);
      if (m < N) one(m, 1.0);
      else one(2 * N - 1 - m, -1.0);
      break;
    }
    case WaveletMode::Smooth: {  // linear continuation of the first / last difference
      if (N == 1) { one(0, 1.0); break; }
      if (n < 0) {  // x0 + n (x1 - x0)
        r.src[0] = 0; r.coef[0] = 1.0 - (double)n;
        r.src[1] = 1; r.coef[1] = (double)n;
      } else {      // x(N-1) + (n - N + 1) (x(N-1) - x(N-2))
        double k = (double)(n - N + 1);
        r.src[0] = N - 1; r.coef[0] = 1.0 + k;
        r.src[1] = N - 2; r.coef[1] = -k;
      }
      break;
    }
    case WaveletMode::Antireflect: {
      // Point symmetry about each end sample: x(-k) = 2 x0 - x(k). Two such reflections
      // are a shift by 2 (N - 1) that adds 2 (x(N-1) - x0) each time.
      if (N == 1) { one(0, 1.0); break; }
      const int64_t period = 2 * N - 2;
      int64_t m = floor_mod(n, period), q = (n - m) / period;
      // base value at m in [0, period)
      int t = 0;
      if (m < N) {
        r.src[t] = m; r.coef[t++] = 1.0;
      } else {  // 2 x(N-1) - x(2N-2-m)
        r.src[t] = N - 1; r.coef[t++] = 2.0;
        r.src[t] = 2 * N - 2 - m; r.coef[t++] = -1.0;
      }
      if (q != 0) {  // + 2 q (x(N-1) - x0), merged into existing terms
        auto add = [&](int64_t i, double c) {
          for (int u = 0; u < t; ++u)
            if (r.src[u] == i) { r.coef[u] += c; return; }
          r.src[t] = i; r.coef[t++] = c;
        };
        add(N - 1, 2.0 * (double)q);
        add(0, -2.0 * (double)q);
      }
      break;
    }
  }
  return r;
}

// A training step asks for the same few maps (one per level, length and mode) in every step.
// Building each once saves the host work, and its id stays the same, so the CUDA backend
// keeps one device copy instead of uploading the map on every call. Bounded, because a sweep
// over many lengths must not keep every map alive: full means cleared, like the FFT plan
// caches (a map that a graph still holds stays valid).
constexpr size_t kMaxMaps = 64;
constexpr int64_t kMaxMapRows = int64_t(1) << 19;  // about 40 MiB of host tables

struct MapKey {
  WaveletMode mode;
  int64_t n, left, total, keep;
  auto operator<=>(const MapKey&) const = default;
};

struct MapMemo {
  std::mutex mutex;
  std::map<MapKey, std::shared_ptr<const RowMap>> maps;
  int64_t rows = 0;  // padded rows of the maps held
};

}  // namespace

std::shared_ptr<const RowMap> extension_map(WaveletMode mode, int64_t n, int64_t left,
                                            int64_t total, int64_t keep) {
  WAVSPA_CHECK(keep <= n, "extension_map: cannot keep ", keep, " of ", n, " rows");
  static MapMemo memo;
  const MapKey key{mode, n, left, total, keep};
  std::lock_guard<std::mutex> lock(memo.mutex);
  auto it = memo.maps.find(key);
  if (it != memo.maps.end()) return it->second;
  std::vector<ExtendRow> rows(total);
  for (int64_t p = 0; p < total; ++p) {
    const ExtendRow full = extension_row(mode, n, p - left);
    if (keep < 0) {
      rows[p] = full;
      continue;
    }
    int t = 0;  // the terms on rows [0, keep), in order
    for (int k = 0; k < 3 && full.src[k] >= 0; ++k)
      if (full.src[k] < keep) {
        rows[p].src[t] = full.src[k];
        rows[p].coef[t++] = full.coef[k];
      }
  }
  if (keep >= 0) n = keep;
  if (memo.maps.size() >= kMaxMaps || memo.rows + total > kMaxMapRows) {
    memo.maps.clear();
    memo.rows = 0;
  }
  auto map = std::make_shared<const RowMap>(make_row_map(n, std::move(rows)));
  memo.maps.emplace(key, map);
  memo.rows += total;
  return map;
}

// ---- the primitives -------------------------------------------------------------------------

namespace {

// y (A, P, C) -> (A, map.n, C): the adjoint of extend.
Tensor fold_raw(const Tensor& y, const RowMap& map) {
  Tensor out = zeros_raw({y.shape()[0], map.n, y.shape()[2]}, y.dtype(), y.device());
  backend_of(y).wavelet_extend_backward(y, map, out);
  return out;
}

// A plane as the kernels want it: (A, L, C) with the (L, C) part contiguous.
Tensor as_plane(const Tensor& t) {
  const bool ok = t.dim() == 3 && (t.shape()[2] == 1 || t.strides()[2] == 1) &&
                  (t.shape()[1] == 1 || t.strides()[1] == t.shape()[2]);
  return ok ? t : contiguous_raw(t);
}

// x plane (A, map.n, C) -> nf planes (A, L, C), each its own contiguous tensor
std::vector<Tensor> analysis_raw(const Tensor& x, const RowMap& map, const Tensor& w,
                                 int64_t start, int64_t L) {
  std::vector<Tensor> out;
  for (int64_t f = 0; f < w.shape()[0]; ++f)
    out.push_back(Tensor::empty({x.shape()[0], L, x.shape()[2]}, x.dtype(), x.device()));
  backend_of(x).wavelet_analysis(x, map, w, start, out);
  return out;
}

// The gradients that reached some of an op's outputs, with zeros for the others.
std::vector<Tensor> with_zeros(const std::vector<Tensor>& grads, const Shape& shape, DType dtype,
                               Device device) {
  std::vector<Tensor> out;
  for (const Tensor& g : grads)
    out.push_back(!g.defined() ? zeros_raw(shape, dtype, device) : as_plane(g.dtype() == dtype ? g : g.to(dtype)));
  return out;
}

// nf planes (A, L, C) -> (A, map.n, C), plus base (a plane of that shape) if defined
Tensor synthesis_raw(const std::vector<Tensor>& planes, const Tensor& w, int64_t start,
                     const RowMap& map, const Tensor& base = Tensor()) {
  const Tensor& c0 = planes[0];
  Tensor out = Tensor::empty({c0.shape()[0], map.n, c0.shape()[2]}, c0.dtype(), c0.device());
  backend_of(c0).wavelet_synthesis(planes, w, start, map, out, base);
  return out;
}

Tensor filter_grad_raw(const std::vector<Tensor>& g, const Tensor& x, const RowMap& map,
                       int64_t start, const Shape& w_shape) {
  Tensor gw = Tensor::empty(w_shape, filter_dtype(x.dtype()), x.device());
  backend_of(x).wavelet_filter_grad(g, x, map, start, gw);
  return gw;
}

}  // namespace

// Backward: synthesis with the same map (the exact adjoint, which folds padding gradients
// back onto their source samples) and the filter correlation. The bands are separate tensors
// of one node, so a band feeds the next op without a copy and its gradient arrives whole.
std::vector<Tensor> analysis(const Tensor& x, std::shared_ptr<const RowMap> map, const Tensor& w,
                             int64_t start, int64_t L) {
  Tensor xp = as_plane(x), wc = contiguous_raw(w);
  std::vector<Tensor> out = analysis_raw(xp, *map, wc, start, L);
  if (autograd::needs_grad({x, w})) {
    Tensor sx = xp.detach(), sw = wc.detach();
    bool need_x = x.requires_grad(), need_w = w.requires_grad();
    autograd::record("WaveletAnalysisBackward", {x, w}, out, {sx, sw},
                     [sx, sw, map, start, L, need_x, need_w](const std::vector<Tensor>& g) {
      std::vector<Tensor> gp = with_zeros(g, {sx.shape()[0], L, sx.shape()[2]}, sx.dtype(), sx.device());
      return G{need_x ? synthesis_raw(gp, sw, start, *map) : Tensor(),
               need_w ? filter_grad_raw(gp, sx, *map, start, sw.shape()) : Tensor()};
    });
  }
  return out;
}

// Backward: analysis with the same map, and the filter correlation (and base's gradient, the
// output's as it is).
Tensor synthesis(const std::vector<Tensor>& planes_in, const Tensor& w, int64_t start,
                 std::shared_ptr<const RowMap> map, const Tensor& base) {
  std::vector<Tensor> planes;
  for (const Tensor& p : planes_in) planes.push_back(as_plane(p));
  Tensor wc = contiguous_raw(w);
  const Tensor& c0 = planes[0];
  if (base.defined()) {
    check_same("synthesis", c0, base);
    const Shape want{c0.shape()[0], map->n, c0.shape()[2]};
    WAVSPA_CHECK(base.shape() == want, "synthesis: the residual must be ", shape_str(want), ", got ",
                 shape_str(base.shape()));
  }
  Tensor out = synthesis_raw(planes, wc, start, *map, base.defined() ? as_plane(base) : Tensor());
  std::vector<Tensor> inputs = planes_in;
  inputs.push_back(w);
  if (base.defined()) inputs.push_back(base);
  if (autograd::needs_grad(inputs)) {
    std::vector<Tensor> saved;
    for (const Tensor& p : planes) saved.push_back(p.detach());
    Tensor sw = wc.detach();
    const int64_t L = planes[0].shape()[1];
    std::vector<bool> need;
    for (const Tensor& t : inputs) need.push_back(t.requires_grad());
    std::vector<Tensor> read = saved;
    read.push_back(sw);
    const DType dt = out.dtype();
    const bool has_base = base.defined();
    autograd::record("WaveletSynthesisBackward", inputs, out, read,
                     [saved, sw, map, start, L, need, dt, has_base](const Tensor& g) {
      Tensor gp = as_plane(g.dtype() == dt ? g : g.to(dt));
      G grads;
      bool any_plane = false;
      for (size_t f = 0; f < saved.size(); ++f) any_plane = any_plane || need[f];
      std::vector<Tensor> gc = any_plane ? analysis_raw(gp, *map, sw, start, L) : std::vector<Tensor>();
      for (size_t f = 0; f < saved.size(); ++f) grads.push_back(need[f] ? gc[f] : Tensor());
      grads.push_back(need[saved.size()] ? filter_grad_raw(saved, gp, *map, start, sw.shape()) : Tensor());
      if (has_base) grads.push_back(need.back() ? g : Tensor());
      return grads;
    });
  }
  return out;
}

// Backward: the fold (the map's transpose).
Tensor extend(const Tensor& x, std::shared_ptr<const RowMap> map) {
  Tensor xc = contiguous_raw(x);
  Tensor out = Tensor::empty({xc.shape()[0], map->padded_rows(), xc.shape()[2]}, xc.dtype(),
                             xc.device());
  backend_of(xc).wavelet_extend(xc, *map, out);
  if (autograd::needs_grad({x})) {
    autograd::record("WaveletExtendBackward", {x}, out, {}, [map](const Tensor& g) {
      return G{fold_raw(contiguous_raw(g), *map)};
    });
  }
  return out;
}

}  // namespace wavelet_detail
}  // namespace wavspa
