// Bad input gets a wavspa::Error naming the op and what was expected and what came.
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

TEST_CASE("mismatched shapes name the op and both shapes") {
  check_error([] { add(zeros({2, 3}), zeros({4})); }, {"add", "(2, 3)", "(4,)", "broadcast"});
  check_error([] { mul(zeros({2, 3}), zeros({3, 2})); }, {"mul", "(2, 3)", "(3, 2)"});
  check_error([] { matmul(zeros({2, 3}), zeros({4, 5})); }, {"matmul", "(2, 3)", "(4, 5)", "inner"});
  check_error([] { linear(zeros({2, 3}), zeros({5, 4})); }, {"linear", "(2, 3)", "(5, 4)"});
  check_error([] { concat({zeros({2, 3}), zeros({3, 3})}, 1); }, {"concat", "(3, 3)", "(2, 3)"});
  check_error([] { stack({zeros({2}), zeros({3})}, 0); }, {"stack", "(3,)", "(2,)"});
  check_error([] { layer_norm(zeros({2, 3}), {4}); }, {"layer_norm", "(2, 3)", "(4,)"});
  check_error([] { layer_norm(zeros({2, 3}), {3}, zeros({2})); }, {"layer_norm", "weight", "(2,)", "(3,)"});
  check_error([] { cross_entropy(zeros({4, 3}), zeros({5}, kInt64)); },
              {"cross_entropy", "(4, 3)", "(5,)"});
  check_error([] { zeros({2, 3}).expand({4, 3, 4}); }, {"expand", "(2, 3)", "(4, 3, 4)"});
  check_error([] { split(zeros({5}), std::vector<int64_t>{2, 2}, 0); }, {"split", "5"});
}

TEST_CASE("wrong dtypes and devices") {
  // Binary elementwise ops promote mixed dtypes (core/dtype.h); matmul does not.
  check_error([] { matmul(zeros({2, 2}), zeros({2, 2}, kFloat64)); }, {"matmul", "float32", "float64"});
  check_error([] { exp(zeros({2}, kInt64)); }, {"exp", "float", "int64"});
  check_error([] { softmax(zeros({2}, kInt32), 0); }, {"softmax", "int32"});
  check_error([] { neg(zeros({2}, kBool)); }, {"neg", "bool"});
  check_error([] { index_select(zeros({3}), 0, zeros({1})); }, {"index_select", "int64", "float32"});
  check_error([] { cross_entropy(zeros({2, 3}), zeros({2})); }, {"cross_entropy", "int"});
  check_error([] { zeros({2}).data<double>(); }, {"data<float64>", "float32"});
#ifndef WAVSPA_CUDA  // a CUDA build with a GPU accepts the device
  check_error([] { zeros({2}, kFloat32, Device::cuda()); }, {"cuda", "CUDA"});
#endif
}

TEST_CASE("out-of-range indices and dims") {
  check_error([] { index_select(zeros({3, 2}), 0, from_vector(std::vector<int64_t>{0, 3})); },
              {"index_select", "index 3", "size 3"});
  check_error([] { embedding(zeros({4, 2}), from_vector(std::vector<int64_t>{-1})); },
              {"index -1", "size 4"});
  check_error([] { gather(zeros({2, 2}), 1, from_vector(std::vector<int64_t>{0, 5}, {1, 2})); },
              {"gather", "5", "size 2"});
  check_error([] { cross_entropy(zeros({2, 3}), from_vector(std::vector<int64_t>{0, 3})); },
              {"cross_entropy", "target[1] = 3", "3 classes"});
  check_error([] { sum(zeros({2, 3}), {2}); }, {"sum", "dimension 2", "2 dims"});
  check_error([] { zeros({2, 3}).transpose(0, 3); }, {"transpose", "dimension 3"});
  check_error([] { zeros({2, 3}).narrow(1, 2, 2); }, {"narrow", "[2, 4)", "size 3"});
  check_error([] { zeros({2, 3}).permute({0, 0}); }, {"permute", "repeated"});
  check_error([] { zeros({2}).set({2}, 1.0); }, {"set", "out of range"});
}

TEST_CASE("bad reshapes and bad arguments") {
  check_error([] { zeros({2, 3}).reshape({4, 2}); }, {"reshape", "6", "(4, 2)"});
  check_error([] { zeros({2, 3}).reshape({-1, -1}); }, {"reshape", "only one"});
  check_error([] { zeros({2, 3}).view({5, -1}); }, {"view", "6", "(5, -1)"});
  check_error([] { dropout(zeros({2}), 1.5); }, {"dropout", "1.5"});
  check_error([] { arange(0, 1, 0); }, {"arange", "step"});
  check_error([] { randint(5, 5, {2}); }, {"randint", "[5, 5)"});
  check_error([] { clamp(zeros({2}), 1, 0); }, {"clamp", "above"});
  check_error([] { pad(zeros({3}), {1}); }, {"pad", "pairs"});
  check_error([] { Tensor undefined; add(undefined, zeros({1})); }, {"add", "undefined"});
}
