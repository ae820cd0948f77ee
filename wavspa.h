// The whole public API of wavspa in one include.
//
//   #include "wavspa.h"
//   using namespace wavspa;
//   Tensor w = randn({3, 2}).requires_grad_();
//   Tensor loss = mean(pow(matmul(randn({8, 3}), w), 2.0));
//   loss.backward();
#pragma once

#include "autograd/function.h"
#include "autograd/grad_mode.h"
#include "autograd/gradcheck.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/random.h"
#include "core/runtime.h"
#include "core/shape.h"
#include "core/tensor.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/fft.h"
#include "ops/graph.h"
#include "ops/linalg.h"
#include "ops/nn.h"
#include "ops/optim.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "ops/wavelet.h"
