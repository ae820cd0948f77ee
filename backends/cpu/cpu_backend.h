// The CPU backend: OpenMP loops, OpenBLAS matrix products. One file per kernel family:
// memory.cpp, elementwise.cpp, reduce.cpp, gemm.cpp, norm.cpp (softmax, layernorm,
// cross-entropy), index.cpp, attention.cpp, random.cpp, wavelet.cpp, fft.cpp.
#pragma once

#include "backends/backend.h"

namespace wavspa::cpu {

class CpuBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::CPU; }

  void copy(const Tensor& src, const Tensor& dst) override;
  void fill(const Tensor& dst, double value) override;
  void copy_from_host(const void* src, const Tensor& dst) override;
  void copy_to_host(const Tensor& src, void* dst) override;

  void unary(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out, double p0,
              double p1) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) override;

  void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
              const Tensor& out) override;
  void arg_reduce(bool is_max, const Tensor& x, int64_t dim, const Tensor& out) override;
  void column_sum(const Tensor& x, const Tensor& out) override;

  void gemm(const GemmArgs& g, const Tensor& a, const Tensor& b, const Tensor& c) override;
  void batched_gemm(const GemmArgs& g, int64_t batch, const Tensor& a, int64_t stride_a,
                    const Tensor& b, int64_t stride_b, const Tensor& c,
                    int64_t stride_c) override;

  void softmax_forward(const Tensor& x, const Tensor& y, bool log) override;
  void softmax_backward(const Tensor& y, const Tensor& grad_y, const Tensor& grad_x,
                        bool log) override;
  void layernorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps,
                         const Tensor& y, const Tensor& mean, const Tensor& rstd) override;
  void layernorm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                          const Tensor& mean, const Tensor& rstd, const Tensor& grad_x,
                          const Tensor& grad_weight, const Tensor& grad_bias) override;
  void dropout_add_layernorm_forward(const Tensor& base, const Tensor& x, PhiloxState s, double p,
                                     const Tensor& weight, const Tensor& bias, double eps, const Tensor& h,
                                     const Tensor& y, const Tensor& mean, const Tensor& rstd) override;
  void layernorm_backward_add(const Tensor& grad_y, const Tensor& grad_add, const Tensor& x, const Tensor& weight,
                              const Tensor& mean, const Tensor& rstd, const Tensor& grad_x,
                              const Tensor& grad_weight, const Tensor& grad_bias) override;

  void index_select(const Tensor& x, int64_t dim, const Tensor& index,
                    const Tensor& out) override;
  void index_add(const Tensor& out, int64_t dim, const Tensor& index,
                 const Tensor& src) override;
  void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) override;
  void scatter_add(const Tensor& out, int64_t dim, const Tensor& index,
                   const Tensor& src) override;

  void adam_step(const AdamHyper& h, const std::vector<AdamSlot>& slots, const Tensor& grad_scale,
                 const Tensor& skip) override;

  Tensor attention_forward(const AttentionArgs& a, const Tensor& q, const Tensor& k, const Tensor& v,
                           const Tensor& key_keep, const Tensor& out, const Tensor& lse) override;
  void attention_backward(const AttentionArgs& a, const Tensor& q, const Tensor& k, const Tensor& v,
                          const Tensor& key_keep, const Tensor& out, const Tensor& lse,
                          const Tensor& dropout_bits, const Tensor& grad_out, const Tensor& grad_q,
                          const Tensor& grad_k, const Tensor& grad_v) override;
  void cross_entropy_forward(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                             double label_smoothing, const Tensor& losses) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& target,
                              const Tensor& grad_losses, int64_t ignore_index,
                              double label_smoothing, const Tensor& grad_logits) override;

  void wavelet_extend(const Tensor& x, const RowMap& map, const Tensor& out) override;
  void wavelet_extend_backward(const Tensor& grad_out, const RowMap& map,
                               const Tensor& grad_x) override;
  void wavelet_analysis(const Tensor& x, const RowMap& map, const Tensor& w, int64_t start,
                        const std::vector<Tensor>& outs) override;
  void wavelet_synthesis(const std::vector<Tensor>& coeffs, const Tensor& w, int64_t start,
                         const RowMap& map, const Tensor& out, const Tensor& base) override;
  void wavelet_filter_grad(const std::vector<Tensor>& g, const Tensor& x, const RowMap& map,
                           int64_t start, const Tensor& grad_w) override;

  void lattice_filter(const Tensor& theta, const Tensor& h) override;
  void lattice_filter_backward(const Tensor& theta, const Tensor& grad_h, const Tensor& grad_theta) override;
  void lifting_step(const Tensor& v, const Tensor& base, const Tensor& f, int64_t offset, int sign,
                    const Tensor& out) override;
  void lifting_step_adjoint(const Tensor& g, const Tensor& base, const Tensor& f, int64_t offset, int sign,
                            const Tensor& out) override;
  void lifting_filter_grad(const Tensor& g, const Tensor& v, int64_t offset, int sign, const Tensor& grad_f) override;

  void fft_r2c(const Tensor& x, const Tensor& spec) override;
  void fft_c2r(const Tensor& spec, double scale, const Tensor& x) override;

  void uniform(const Tensor& out, PhiloxState s, double lo, double hi) override;
  void normal(const Tensor& out, PhiloxState s, double mean, double std) override;
  void randint(const Tensor& out, PhiloxState s, int64_t lo, int64_t hi) override;
  void dropout_mask(const Tensor& out, PhiloxState s, double p) override;
  void dropout(const Tensor& x, const Tensor& out, PhiloxState s, double p, const Tensor& base) override;
  void bias_gelu(const Tensor& x, const Tensor& bias, const Tensor& out, bool tanh, PhiloxState s,
                 double p) override;
  void bias_gelu_backward(const Tensor& g, const Tensor& x, const Tensor& bias, const Tensor& grad_x, bool tanh,
                          PhiloxState s, double p) override;
};

CpuBackend& cpu_backend();

}  // namespace wavspa::cpu
