#include "tests/ops/op_table.h"

namespace wavspa::test {

const std::vector<OpInfo>& op_table() {
  static const std::vector<OpInfo> table = [] {
    std::vector<OpInfo> t;
    add_elementwise_ops(t);
    add_reduce_linalg_nn_ops(t);
    add_shape_ops(t);
    add_wavelet_fft_ops(t);
    add_factory_ops(t);
    for (OpInfo& op : t)
      if (op.error_name.empty()) op.error_name = op.name;
    return t;
  }();
  return table;
}

}  // namespace wavspa::test
