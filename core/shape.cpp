#include "core/shape.h"

#include "core/error.h"

namespace wavspa {

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  if (s.size() == 1) out += ",";
  return out + ")";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t acc = 1;
  for (int64_t i = (int64_t)shape.size() - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= shape[i] > 0 ? shape[i] : 1;
  }
  return st;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t lo = ndim > 0 ? -ndim : -1, hi = ndim > 0 ? ndim - 1 : 0;
  WAVSPA_CHECK(dim >= lo && dim <= hi, op, ": dimension ", dim, " out of range for a tensor with ",
               ndim, " dims (expected ", lo, "..", hi, ")");
  return dim < 0 ? dim + (ndim > 0 ? ndim : 1) : dim;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    WAVSPA_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ",
                 shape_str(b), " do not broadcast (dimension ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::vector<int64_t> view_strides(const Shape& shape, const std::vector<int64_t>& strides,
                                  const Shape& target) {
  // A view exists when the old dims split into runs that are each contiguous in memory
  // ("chunks") and the target dims group into runs with the same element counts. Walk both
  // shapes from the innermost dim, one chunk at a time.
  if (shape.empty() || shape_numel(shape) <= 1) return contiguous_strides(target);
  std::vector<int64_t> out(target.size());
  int64_t t = (int64_t)target.size() - 1;
  int64_t chunk_stride = strides.back();  // stride of the chunk's innermost element
  int64_t chunk_numel = 1, view_numel = 1;
  for (int64_t d = (int64_t)shape.size() - 1; d >= 0; --d) {
    chunk_numel *= shape[d];
    bool chunk_ends = d == 0 || (shape[d - 1] != 1 && strides[d - 1] != chunk_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (t >= 0 && (view_numel < chunk_numel || target[t] == 1)) {
      out[t] = view_numel * chunk_stride;
      view_numel *= target[t];
      --t;
    }
    if (view_numel != chunk_numel) return {};
    if (d > 0) {
      chunk_stride = strides[d - 1];
      chunk_numel = 1;
      view_numel = 1;
    }
  }
  if (t != -1) return {};
  return out;
}

Shape infer_shape(const Shape& target, int64_t numel, const char* op) {
  Shape out = target;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      WAVSPA_CHECK(infer < 0, op, ": only one dimension can be -1, got ", shape_str(target));
      infer = (int64_t)i;
    } else {
      WAVSPA_CHECK(out[i] >= 0, op, ": invalid size ", out[i], " in shape ", shape_str(target));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    WAVSPA_CHECK(known != 0 && numel % known == 0, op, ": cannot reshape ", numel,
                 " elements into shape ", shape_str(target));
    out[infer] = numel / known;
  }
  WAVSPA_CHECK(shape_numel(out) == numel, op, ": cannot reshape a tensor of ", numel,
               " elements into shape ", shape_str(target));
  return out;
}

AroundDim around_dim(const Shape& shape, int64_t dim) {
  AroundDim a;
  for (int64_t d = 0; d < dim; ++d) a.outer *= shape[d];
  a.size = shape[dim];
  for (int64_t d = dim + 1; d < (int64_t)shape.size(); ++d) a.inner *= shape[d];
  return a;
}

KeptAndReduced split_reduced_dims(const Shape& shape, const Shape& strides,
                                  const std::vector<int64_t>& reduced) {
  std::vector<bool> is_reduced(shape.size(), false);
  for (int64_t d : reduced) is_reduced[d] = true;
  KeptAndReduced out;
  for (size_t d = 0; d < shape.size(); ++d) {
    StridedDims& target = is_reduced[d] ? out.reduced : out.kept;
    target.shape.push_back(shape[d]);
    target.strides.push_back(strides[d]);
  }
  return out;
}

StridedDims coalesce_dims(const StridedDims& d) {
  StridedDims out;
  for (size_t i = 0; i < d.shape.size(); ++i) {
    if (d.shape[i] == 1) continue;
    if (!out.shape.empty() && out.strides.back() == d.strides[i] * d.shape[i]) {
      out.shape.back() *= d.shape[i];
      out.strides.back() = d.strides[i];
    } else {
      out.shape.push_back(d.shape[i]);
      out.strides.push_back(d.strides[i]);
    }
  }
  return out;
}

}  // namespace wavspa
