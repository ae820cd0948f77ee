// Lists a safetensors checkpoint: every tensor (name, dtype, shape, elements) and the
// metadata. Exits non-zero with the loader's message on a bad file.
//
//   build/inspect_checkpoint runs/x/latest.safetensors
#include <cstdio>
#include <iostream>

#include "nn/checkpoint.h"

int main(int argc, char** argv) {
  if (argc != 2 || std::string(argv[1]) == "--help") {
    std::fprintf(stderr, "usage: %s FILE.safetensors\n", argv[0]);
    return argc == 2 ? 0 : 2;
  }
  try {
    wavspa::nn::Checkpoint ck = wavspa::nn::load_safetensors(argv[1]);
    int64_t total = 0;
    std::printf("%s: %zu tensors\n", argv[1], ck.tensors.size());
    for (const auto& [name, t] : ck.tensors) {
      std::printf("  %-48s %-8s %-20s %lld\n", name.c_str(), wavspa::dtype_name(t.dtype()),
                  wavspa::shape_str(t.shape()).c_str(), (long long)t.numel());
      total += t.numel();
    }
    std::printf("  %lld elements in all\n", (long long)total);
    std::printf("metadata: %zu entries\n", ck.metadata.size());
    for (const auto& [key, value] : ck.metadata) std::printf("  %s = %s\n", key.c_str(), value.c_str());
    return 0;
  } catch (const std::exception& e) {  // wavspa::Error, and the library's own
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
