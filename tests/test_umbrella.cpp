// wavspa.h alone is enough to write, train and save a model: this file includes nothing else
// of the library (doctest aside) and reaches every layer of it.
#include "wavspa.h"

#include <doctest/doctest.h>

#include <filesystem>

using namespace wavspa;

TEST_CASE("wavspa.h: one include covers tensors, ops, nn, models, data and train") {
  // data/: a tiny dataset and its loader.
  auto d = std::make_shared<data::TokenDataset>();
  d->name = "umbrella";
  d->vocab_size = 5;
  d->num_classes = 2;
  d->seq_len = 6;
  for (int i = 0; i < 8; ++i) {
    d->inputs.push_back({1, 2, 3, (int32_t)(i % 4) + 1});
    d->labels.push_back(i % 2);
  }
  data::BatchLoader loader(d, data::LoaderOptions{.batch_size = 4, .shuffle = false, .prefetch = 0});
  loader.start_epoch(0);
  const auto batch = loader.next();
  REQUIRE(batch.has_value());
    // models/: the paper's classifier from a config; nn/: an optimizer and a container.
  models::ModelConfig c;
  c.vocab_size = 5;
  c.num_classes = 2;
  c.max_len = 6;
  c.emb_dim = 8;
  c.num_layers = 1;
  c.num_heads = 1;
  c.qkv_dim = 8;
  c.mlp_dim = 16;
  auto model = models::make_classifier(c);
  nn::ModuleList heads;
  heads.push_back(std::make_shared<nn::Linear>(2, 2));
  nn::AdamW opt(model->parameters(), nn::AdamWOptions{});
  // ops/ and autograd/: a loss and its backward.
  Tensor logits = model->forward(batch->inputs);
  Tensor loss = cross_entropy(heads.at<nn::Linear>(0)->forward(logits), batch->labels);
  loss.backward();
  opt.step();
  CHECK(std::isfinite(loss.item()));
  // nn/checkpoint.h: save and load.
  const std::string path = (std::filesystem::temp_directory_path() / "wavspa_umbrella.safetensors").string();
  nn::save_safetensors(path, model->state_dict());
  auto again = models::make_classifier(c);
  again->load_state_dict(nn::load_safetensors(path).tensors);
  std::filesystem::remove(path);
  const Tensor a = again->parameters()[0], b = model->parameters()[0];
  CHECK(max(abs(sub(a, b))).item() == 0);
}
