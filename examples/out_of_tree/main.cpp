// A program outside the wavspa tree, built against an installed copy (see README.md here):
// a small model with a learnable wavelet front end, trained for a few steps on random data.
#include <wavspa.h>

#include <cstdio>

using namespace wavspa;

// Per-channel orthogonal wavelet (learned), one level, then a stack of linear layers.
class WaveletMLP : public nn::Module {
 public:
  WaveletMLP(int64_t channels, int64_t depth) : Module("WaveletMLP") {
    register_parameter("filters", &filters, mul(randn({4, channels}), 0.5));
    layers = register_module("layers", std::make_shared<nn::ModuleList>());
    for (int64_t i = 0; i < depth; ++i) layers->push_back(std::make_shared<nn::Linear>(channels, channels));
    head = register_module("head", std::make_shared<nn::Linear>(channels, 2));
  }
  Tensor forward(const Tensor& x) {  // x: (B, N, C)
    const Wavelet w = Wavelet::orthogonal_from(filters);
    const std::vector<Tensor> c = wavedec(x, w, "periodization", 1, 1);
    Tensor h = c[0];  // the approximation band, (B, N / 2, C)
    for (const auto& layer : *layers) h = gelu(std::static_pointer_cast<nn::Linear>(layer)->forward(h));
    return head->forward(mean(h, {1}));
  }
  Tensor filters;
  std::shared_ptr<nn::ModuleList> layers;
  std::shared_ptr<nn::Linear> head;
};

int main() {
  manual_seed(0);
  WaveletMLP model(8, 2);
  nn::AdamW opt(model.parameters(), nn::AdamWOptions{.lr = 1e-2});
  const Tensor x = randn({16, 32, 8});
  const Tensor y = from_vector(std::vector<int64_t>{0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0});
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    opt.zero_grad();
    Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  std::printf("out_of_tree: %lld parameters, loss %.4f -> %.4f\n", (long long)model.num_parameters(), first, last);
  return last < first ? 0 : 1;
}
