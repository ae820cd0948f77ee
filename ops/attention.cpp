#include "ops/attention.h"

#include <cmath>

#include "ops/common.h"
#include "ops/elementwise.h"

namespace wavspa {

using namespace ops_detail;
using G = std::vector<Tensor>;

namespace {

// (B, H, n, d) <-> (B, n, H, d): outputs and gradients live in (B, n, H, d) memory and are
// handed out as this permutation of it.
const std::vector<int64_t> kHeadsFirst{0, 2, 1, 3};

// The kernels read rows of d consecutive elements (AttentionArgs): a tensor whose last dim
// has another stride is copied. With d <= 1 the last stride is never used, so a view that
// only calls it 1 does.
Tensor unit_rows(const Tensor& t) {
  if (t.strides().back() == 1) return t;
  if (t.shape().back() <= 1) {
    Shape strides = t.strides();
    strides.back() = 1;
    return t.as_strided(t.shape(), strides, t.offset());
  }
  Tensor c = Tensor::empty(t.shape(), t.dtype(), t.device());
  backend_of(t).copy(t, c);
  return c;
}

// An uninitialised (B, H, n, d) tensor on (B, n, H, d) memory.
Tensor heads_first(const Tensor& like, int64_t B, int64_t H, int64_t n, int64_t d) {
  return permute_raw(Tensor::empty({B, n, H, d}, like.dtype(), like.device()), kHeadsFirst);
}

}  // namespace

namespace {

// What one call's backward needs: the kernels' arguments and the forward's tensors.
struct Forward {
  AttentionArgs args;
  Tensor qc, kc, vc;  // q, k, v as the kernel read them (unit last stride)
  Tensor keep;        // (B, nk) int32 or undefined
  Tensor out_mem;     // (B, nq, H, d)
  Tensor lse;         // (B, H, nq)
  Tensor bits;        // the dropout mask the backend kept for the backward, or undefined
  bool compute = false;
};

// The profiler's FLOPs of `products` dense (nq, nk, d) products per head: 2 forward (Q K^T,
// P V), 5 backward (S again, dV, dP, dQ, dK). Masked and dropped keys are not discounted.
double attention_flops(const AttentionArgs& a, int products) {
  return 2.0 * products * (double)a.batch * (double)a.heads * (double)a.nq * (double)a.nk * (double)a.dim;
}

// Checks, the mask, the dropout range and the output buffers: everything but the kernel.
Forward prepare_forward(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  check_floating(op, q);
  check_same(op, q, k);
  check_same(op, q, v);
  WAVSPA_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && k.shape() == v.shape() &&
                   q.shape()[0] == k.shape()[0] && q.shape()[1] == k.shape()[1] &&
                   q.shape()[3] == k.shape()[3],
               "attention: expected q (B, H, nq, d) and k, v (B, H, nk, d), got q ",
               shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()));
  const int64_t B = q.shape()[0], H = q.shape()[1], nq = q.shape()[2], nk = k.shape()[2],
                d = q.shape()[3];
  WAVSPA_CHECK(o.dropout_p >= 0 && o.dropout_p <= 1, "attention: dropout_p must be in [0, 1], got ",
               o.dropout_p);
  WAVSPA_CHECK(std::isfinite(o.scale), "attention: scale must be finite (negative for 1 / sqrt(d)), got ",
               o.scale);
  Tensor keep;  // (B, nk) int32, the kernels' key_keep
  if (o.key_mask.defined()) {
    WAVSPA_CHECK(o.key_mask.device() == q.device(), "attention: key_mask is on ", o.key_mask.device(),
                 " but q on ", q.device());
    WAVSPA_CHECK(o.key_mask.shape() == Shape({B, nk}), "attention: key_mask must be (B, nk) = ",
                 shape_str({B, nk}), ", got ", shape_str(o.key_mask.shape()));
    keep = Tensor::empty({B, nk}, kInt32, q.device());
    backend_of(q).copy(ne(o.key_mask, scalar_like(0.0, o.key_mask)), keep);  // nonzero -> 1
  }

  AttentionArgs args;
  args.batch = B;
  args.heads = H;
  args.nq = nq;
  args.nk = nk;
  args.dim = d;
  args.scale = o.scale >= 0 ? o.scale : 1.0 / std::sqrt((double)d);
  args.causal = o.causal;
  if (o.training && o.dropout_p > 0) {
    // The node keeps this counter range, so backward regenerates the forward's mask.
    args.dropout_p = o.dropout_p;
    Generator& g = o.gen ? *o.gen : default_generator();
    args.philox = g.reserve(attention_dropout_counters(args));
  }

  const Tensor qc = unit_rows(q), kc = unit_rows(k), vc = unit_rows(v);
  Tensor out_mem = Tensor::empty({B, nq, H, d}, q.dtype(), q.device());
  Tensor lse = Tensor::empty({B, H, nq}, q.dtype() == kBFloat16 ? kFloat32 : q.dtype(), q.device());
  // No keys (nk == 0): every output row is an average over nothing, 0. An empty output needs
  // no kernel either (the kernels may assume every size is positive).
  const bool compute = out_mem.numel() > 0 && nk > 0;
  if (!compute) backend_of(q).fill(out_mem, 0.0);
  Forward f;
  f.args = args;
  f.qc = qc.detach();
  f.kc = kc.detach();
  f.vc = vc.detach();
  f.keep = keep;
  f.out_mem = out_mem;
  f.lse = lse;
  f.compute = compute;
  return f;
}

// The bytes the forward reads and writes, for the profiler.
double bytes_read(const Forward& f) { return bytes_of(f.qc) + bytes_of(f.kc) + bytes_of(f.vc) + bytes_of(f.keep); }
double bytes_written(const Forward& f) { return bytes_of(f.out_mem) + bytes_of(f.lse); }

// prepare_forward, then the kernel.
Forward run_forward(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  ProfileScope scope(op, q);
  Forward f = prepare_forward(op, q, k, v, o);
  if (f.compute)
    f.bits = backend_of(q).attention_forward(f.args, f.qc, f.kc, f.vc, f.keep, permute_raw(f.out_mem, kHeadsFirst), f.lse);
  if (scope) scope.set_io(bytes_read(f), bytes_written(f), attention_flops(f.args, 2));
  return f;
}

// q, k, v: (B, H, N, d) views of a fused (B, N, 3 E) projection, without a graph of their own.
Tensor qkv_part(const Tensor& base, int64_t heads, int64_t which) {
  const int64_t B = base.shape()[0], N = base.shape()[1], E = base.shape()[2] / 3, d = E / heads;
  const Shape& st = base.strides();
  return base.as_strided({B, heads, N, d}, {st[0], d * st[2], st[1], st[2]}, base.offset() + which * E * st[2]);
}

void check_qkv(const char* op, const Tensor& qkv, int64_t heads) {
  check_floating(op, qkv);
  WAVSPA_CHECK(qkv.dim() == 3, op, ": expected qkv (B, N, 3 E), got ", shape_str(qkv.shape()));
  WAVSPA_CHECK(heads > 0 && qkv.shape()[2] % (3 * heads) == 0, op, ": the last dim of qkv ",
               shape_str(qkv.shape()), " must be 3 x heads x head dim with heads = ", heads);
}

// The kernel's gradient tensor of a fused projection, and its three (B, H, N, d) thirds.
Tensor qkv_grad_part(const Tensor& gqkv, int64_t heads, int64_t which) {
  const int64_t B = gqkv.shape()[0], N = gqkv.shape()[1], E = gqkv.shape()[2] / 3, d = E / heads;
  return gqkv.as_strided({B, heads, N, d}, {N * 3 * E, d, 3 * E, 1}, gqkv.offset() + which * E);
}
// The output's gradient (B, N, E) as the kernel reads it: (B, H, N, d), unit last stride.
Tensor heads_of_grad(const Tensor& g, int64_t heads) {
  const int64_t B = g.shape()[0], N = g.shape()[1], E = g.shape()[2], d = E / heads;
  const Tensor gc = contiguous_raw(g);
  return gc.as_strided({B, heads, N, d}, {N * E, d, E, 1}, gc.offset());
}

}  // namespace

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const AttentionOptions& o) {
  // Autocast: q, k and v in bfloat16 (casts of the graph), a bfloat16 output.
  const bool cast = autocasting(q_in) && autocasting(k_in) && autocasting(v_in);
  const Tensor q = cast ? autocast_bf16(q_in) : q_in, k = cast ? autocast_bf16(k_in) : k_in,
               v = cast ? autocast_bf16(v_in) : v_in;
  const Forward f = run_forward("attention", q, k, v, o);
  const AttentionArgs args = f.args;
  const Tensor keep = f.keep, out_mem = f.out_mem, lse = f.lse, bits = f.bits;
  const bool compute = f.compute;
  Tensor out = permute_raw(out_mem, kHeadsFirst);

  if (autograd::needs_grad({q, k, v})) {
    // One kernel computes the three gradients. They are ordinary tensors with no graph of
    // their own: the engine runs backward with grad mode off (no higher-order gradients, as
    // for every fused op). q, k, v are saved as the kernel read them (unit last stride).
    Tensor sq = f.qc, sk = f.kc, sv = f.vc;
    autograd::record("AttentionBackward", {q, k, v}, out, {sq, sk, sv, keep, out_mem, lse, bits},
                     [args, sq, sk, sv, keep, out_mem, lse, bits, compute](const Tensor& g) {
      const int64_t B = args.batch, H = args.heads, d = args.dim;
      Tensor gq = heads_first(sq, B, H, args.nq, d), gk = heads_first(sq, B, H, args.nk, d),
             gv = heads_first(sq, B, H, args.nk, d);
      ProfileScope scope("attention_backward", g);  // the node's bytes, the kernel's FLOPs
      if (scope) scope.set_io(-1, -1, attention_flops(args, 5));
      if (compute) {
        backend_of(sq).attention_backward(args, sq, sk, sv, keep, permute_raw(out_mem, kHeadsFirst), lse, bits,
                                          unit_rows(g), gq, gk, gv);
      } else {
        for (const Tensor& t : {gq, gk, gv}) backend_of(sq).fill(t, 0.0);
      }
      return G{gq, gk, gv};
    });
  }
  return out;
}

Tensor attention_qkv(const Tensor& qkv_in, int64_t heads, const AttentionOptions& o) {
  const char* op = "attention_qkv";
  const Tensor qkv = autocasting(qkv_in) ? autocast_bf16(qkv_in) : qkv_in;
  check_qkv(op, qkv, heads);
  const int64_t B = qkv.shape()[0], N = qkv.shape()[1], E = qkv.shape()[2] / 3;
  const Tensor base = qkv.detach();
  const Forward f = run_forward(op, qkv_part(base, heads, 0), qkv_part(base, heads, 1), qkv_part(base, heads, 2), o);
  Tensor out = f.out_mem.reshape({B, N, E});  // (B, N, H, d) memory: a view
  if (autograd::needs_grad({qkv})) {
    autograd::record("AttentionQkvBackward", {qkv}, out, {f.qc, f.kc, f.vc, f.keep, f.out_mem, f.lse, f.bits}, [f, B, N, E, heads](const Tensor& g) {
      // The three gradients are written by the kernel straight into their thirds of one tensor.
      Tensor gqkv = Tensor::empty({B, N, 3 * E}, f.qc.dtype(), f.qc.device());
      ProfileScope scope("attention_backward", g);
      if (scope) scope.set_io(-1, -1, attention_flops(f.args, 5));
      if (f.compute) {
        backend_of(gqkv).attention_backward(f.args, f.qc, f.kc, f.vc, f.keep, permute_raw(f.out_mem, kHeadsFirst),
                                            f.lse, f.bits, heads_of_grad(g, heads), qkv_grad_part(gqkv, heads, 0),
                                            qkv_grad_part(gqkv, heads, 1), qkv_grad_part(gqkv, heads, 2));
      } else {
        backend_of(gqkv).fill(gqkv, 0.0);
      }
      return G{gqkv};
    });
  }
  return out;
}

std::vector<Tensor> attention_qkv_group(const std::vector<Tensor>& qkvs_in, int64_t heads, const AttentionOptions& o) {
  const char* op = "attention_qkv_group";
  WAVSPA_CHECK(!qkvs_in.empty(), "attention_qkv_group: expected at least one qkv tensor, got none");
  WAVSPA_CHECK(!o.key_mask.defined(), "attention_qkv_group: a key_mask belongs to one problem; run masked "
               "problems through attention_qkv");
  bool cast = true;
  for (const Tensor& t : qkvs_in) cast = cast && autocasting(t);
  std::vector<Tensor> qkvs;
  for (const Tensor& t : qkvs_in) {
    qkvs.push_back(cast ? autocast_bf16(t) : t);
    check_same_placement(op, qkvs[0], qkvs.back());  // first, so a dtype mismatch names both
  }
  for (const Tensor& t : qkvs) check_qkv(op, t, heads);
  ProfileScope scope(op, qkvs[0]);
  // Each problem prepared in turn (dropout's counters reserved in this order, as attention_qkv
  // on each in turn would), then one backend call for all that have work.
  std::vector<Forward> fs;
  std::vector<AttentionProblem> problems;
  std::vector<size_t> computed;
  for (size_t i = 0; i < qkvs.size(); ++i) {
    const Tensor base = qkvs[i].detach();
    fs.push_back(prepare_forward(op, qkv_part(base, heads, 0), qkv_part(base, heads, 1), qkv_part(base, heads, 2), o));
    const Forward& f = fs.back();
    if (!f.compute) continue;
    AttentionProblem x;
    x.args = f.args;
    x.q = f.qc, x.k = f.kc, x.v = f.vc, x.key_keep = f.keep;
    x.out = permute_raw(f.out_mem, kHeadsFirst), x.lse = f.lse;
    problems.push_back(x);
    computed.push_back(i);
  }
  if (!problems.empty()) {
    const std::vector<Tensor> bits = backend_of(qkvs[0]).attention_forward_group(problems);
    for (size_t j = 0; j < computed.size(); ++j) fs[computed[j]].bits = bits[j];
  }
  double flops = 0, read = 0, written = 0;
  std::vector<Tensor> outs;
  for (const Forward& f : fs) {
    outs.push_back(f.out_mem.reshape({f.args.batch, f.args.nq, f.args.heads * f.args.dim}));  // a view
    flops += attention_flops(f.args, 2);
    read += bytes_read(f);
    written += bytes_written(f);
  }
  if (scope) scope.set_io(read, written, flops);
  if (autograd::needs_grad(qkvs)) {
    std::vector<Tensor> saved;
    for (const Forward& f : fs)
      for (const Tensor& t : {f.qc, f.kc, f.vc, f.keep, f.out_mem, f.lse, f.bits}) saved.push_back(t);
    autograd::record("AttentionQkvGroupBackward", qkvs, outs, saved, [fs, heads](const std::vector<Tensor>& gs) {
      Tensor any;  // some output's gradient: the profiler's device
      for (const Tensor& g : gs)
        if (g.defined() && !any.defined()) any = g;
      ProfileScope scope("attention_backward", any);
      std::vector<Tensor> grads;
      std::vector<AttentionProblem> problems;
      double flops = 0;
      for (size_t i = 0; i < fs.size(); ++i) {
        const Forward& f = fs[i];
        const int64_t B = f.args.batch, N = f.args.nq, E = f.args.heads * f.args.dim;
        Tensor gqkv = Tensor::empty({B, N, 3 * E}, f.qc.dtype(), f.qc.device());
        grads.push_back(gqkv);
        // No gradient reached this output, or nothing to compute: its projection gets zeros.
        if (!f.compute || !gs[i].defined()) {
          backend_of(gqkv).fill(gqkv, 0.0);
          continue;
        }
        AttentionProblem x;
        x.args = f.args;
        x.q = f.qc, x.k = f.kc, x.v = f.vc, x.key_keep = f.keep;
        x.out = permute_raw(f.out_mem, kHeadsFirst), x.lse = f.lse, x.dropout_bits = f.bits;
        x.grad_out = heads_of_grad(gs[i], heads);
        x.grad_q = qkv_grad_part(gqkv, heads, 0), x.grad_k = qkv_grad_part(gqkv, heads, 1);
        x.grad_v = qkv_grad_part(gqkv, heads, 2);
        problems.push_back(x);
        flops += attention_flops(f.args, 5);
      }
      if (scope) scope.set_io(-1, -1, flops);
      if (!problems.empty()) backend_of(grads[0]).attention_backward_group(problems);
      return grads;
    });
  }
  return outs;
}

}  // namespace wavspa
