// Text classification files (CSV and TSV, through libcsv) and the AAN retrieval pairs.
#include "data/readers.h"
#include "fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (const char* suffix : {".csv", ".tsv"}) {
    const std::string path = wavspa::fuzz::as_file(data, size, suffix);
    wavspa::fuzz::refused([&] { wavspa::data::read_text_classification(path, 64); });
  }
  const std::string path = wavspa::fuzz::as_file(data, size, ".tsv");
  wavspa::fuzz::refused([&] { wavspa::data::read_retrieval_pairs(path, 64); });
  return 0;
}
