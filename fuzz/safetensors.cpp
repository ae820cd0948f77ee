// safetensors files (nn/checkpoint.h): header length, JSON header, data offsets, dtypes,
// metadata and checksums.
#include "fuzz/fuzz.h"
#include "nn/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = wavspa::fuzz::as_file(data, size, ".safetensors");
  wavspa::fuzz::refused([&] { wavspa::nn::load_safetensors(path); });
  return 0;
}
