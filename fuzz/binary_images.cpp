// Binary image sets: CIFAR-10's batch files and idx files (MNIST, Fashion-MNIST; gzip too).
#include "data/readers.h"
#include "fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bin = wavspa::fuzz::as_file(data, size, ".bin");
  wavspa::fuzz::refused([&] { wavspa::data::read_cifar10({bin}); });
  for (const char* suffix : {".idx", ".gz"}) {
    const std::string path = wavspa::fuzz::as_file(data, size, suffix);
    wavspa::fuzz::refused([&] { wavspa::data::read_idx(path); });
  }
  return 0;
}
