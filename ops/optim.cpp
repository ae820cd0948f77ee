#include "ops/optim.h"

#include "ops/common.h"

namespace wavspa {

using namespace ops_detail;

void adam_step_(const AdamHyper& hyper, const std::vector<AdamSlot>& slots, const Tensor& grad_scale,
                const Tensor& skip) {
  if (slots.empty()) return;
  const Tensor& first = slots[0].param;
  check_defined("adam_step_", first, "param");
  WAVSPA_CHECK(first.dtype() == kFloat32 || first.dtype() == kFloat64,
               "adam_step_: parameters must be float32 or float64, got ", first.dtype());
  for (size_t i = 0; i < slots.size(); ++i) {
    const AdamSlot& s = slots[i];
    int k = 0;
    for (const Tensor* t : {&s.param, &s.grad, &s.exp_avg, &s.exp_avg_sq}) {
      static const char* kNames[] = {"param", "grad", "exp_avg", "exp_avg_sq"};
      const char* what = kNames[k++];
      check_defined("adam_step_", *t, what);
      WAVSPA_CHECK(t->dtype() == first.dtype() && t->device() == first.device() &&
                       t->shape() == s.param.shape() && t->is_contiguous(),
                   "adam_step_: slot ", i, "'s ", what, " must be a contiguous ", first.dtype(), " tensor of shape ",
                   shape_str(s.param.shape()), " on ", first.device(), ", got ", t->describe());
    }
    WAVSPA_CHECK(s.bias_correction1 > 0 && s.bias_correction2 > 0, "adam_step_: slot ", i,
                 "'s bias corrections must be positive, got ", s.bias_correction1, " and ", s.bias_correction2);
  }
  for (const auto& [t, name] : {std::pair<const Tensor*, const char*>{&grad_scale, "grad_scale"}, {&skip, "skip"}})
    if (t->defined())
      WAVSPA_CHECK(t->numel() == 1 && t->dtype() == kFloat32 && t->device() == first.device(), "adam_step_: ", name,
                   " must be one float32 element on ", first.device(), ", got ", t->describe());
  backend_of(first).adam_step(hyper, slots, grad_scale.defined() ? contiguous_raw(grad_scale) : grad_scale,
                              skip.defined() ? contiguous_raw(skip) : skip);
  for (const AdamSlot& s : slots)  // changed in place: a node that saved one must not run
    for (const Tensor* t : {&s.param, &s.exp_avg, &s.exp_avg_sq}) t->storage()->bump_version();
}

}  // namespace wavspa
