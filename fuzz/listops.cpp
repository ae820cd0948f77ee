// ListOps: expressions (the evaluator and the encoder) and LRA's TSV files.
#include "data/listops.h"
#include "fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = wavspa::fuzz::text(data, size);
  wavspa::fuzz::refused([&] { wavspa::data::evaluate_listops(text); });
  wavspa::fuzz::refused([&] { wavspa::data::encode_listops(text); });
  const std::string path = wavspa::fuzz::as_file(data, size, ".tsv");
  wavspa::fuzz::refused([&] { wavspa::data::read_listops_tsv(path); });
  return 0;
}
