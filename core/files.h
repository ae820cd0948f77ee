// Whole-file reads and writes with errors that name the caller and the file.
//
//   std::string text = read_text_file("configs/run.json", "run config");
//   write_file_atomic(dir + "/metrics.csv", csv, "metrics");   // readers never see half a file
#pragma once

#include <string>

namespace wavspa {

// "<what>: cannot open '<path>'" when the file cannot be read.
std::string read_text_file(const std::string& path, const std::string& what);

// Writes `bytes` to a temporary file beside `path` (named after this process, so two writers
// never share it) and renames it over `path`: a reader, or a run killed midway, sees the old
// file or the new one, never a part. Throws "<what>: ..." naming the file on any failure and
// leaves no temporary file behind. (Checkpoints add fsync on top: nn/checkpoint.cpp.)
void write_file_atomic(const std::string& path, const std::string& bytes, const std::string& what);

}  // namespace wavspa
