// The JSON configs (run and model), --set key=value, and the learning-rate schedule spec.
#include "fuzz/fuzz.h"
#include "models/config.h"
#include "nn/schedule.h"
#include "train/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = wavspa::fuzz::text(data, size);
  wavspa::fuzz::refused([&] { wavspa::train::RunConfig::from_json(text).validate(); });
  wavspa::fuzz::refused([&] { wavspa::models::ModelConfig::from_json(text); });
  wavspa::fuzz::refused([&] {
    wavspa::train::RunConfig c;
    wavspa::train::apply_override(c, text);
    c.validate();
  });
  wavspa::fuzz::refused([&] { wavspa::nn::parse_schedule(text); });
  return 0;
}
