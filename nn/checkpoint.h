// Checkpoints as safetensors files, the format Python's `safetensors` and PyTorch read.
//
//   using namespace wavspa;
//   nn::save_safetensors("model.safetensors", model.state_dict(), {{"step", "1200"}});
//   nn::Checkpoint ck = nn::load_safetensors("model.safetensors");
//   model.load_state_dict(ck.tensors);
//   int step = std::stoi(ck.metadata.at("step"));
//
// The file: 8 bytes little-endian u64 N; N bytes of UTF-8 JSON, padded with spaces to a
// multiple of 8; then the tensors' bytes, little-endian, row-major, back to back. The JSON maps
// each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// first data byte) and may hold "__metadata__", a map of string to string. The training state
// that is not a tensor (step, RNG state, config) travels in that metadata.
//
// Writing is atomic: the bytes go to a temporary file beside `path`, which is fsync'd and then
// renamed over `path`, so a crash leaves either the old file or the new one, never a mix.
// Every file written here (unless SaveOptions::checksums is off) carries a CRC-32 of each
// tensor's bytes in the metadata key "wavspa.crc32" (a JSON object, name to 8 hex digits),
// checked by Python's readers as an ordinary string; reading verifies them, refusing a
// corrupted tensor by name, and returns the metadata without that key. Files without it
// (written by PyTorch or Python's safetensors) load as before.
// Reading checks the whole header against the file before it allocates anything, so a damaged
// or hostile file gives a wavspa::Error naming the file and the problem, never a crash.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "nn/module.h"

namespace wavspa::nn {

struct Checkpoint {
  StateDict tensors;                            // CPU tensors, contiguous
  std::map<std::string, std::string> metadata;  // the file's "__metadata__", if any
};

// The metadata key of the per-tensor checksums.
inline constexpr const char* kChecksumKey = "wavspa.crc32";

struct SaveOptions {
  // For tests of atomicity only: stop after writing this many bytes to the temporary file and
  // throw, leaving the temporary file behind as a killed process would. -1: off.
  int64_t simulate_crash_after_bytes = -1;
  // The per-tensor checksums (kChecksumKey). Off, a file is byte for byte what Python's
  // safetensors writes for the same tensors and metadata.
  bool checksums = true;
};

// Tensors on any device are copied to the CPU; non-contiguous ones are packed. Data are laid
// out the way Python's safetensors lays them out (8-byte dtypes first, then 4-byte, then 2-byte
// ones, by name within each), which keeps every tensor aligned to its element size in the file.
void save_safetensors(const std::string& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata = {},
                      const SaveOptions& options = {});

// Supports the dtypes wavspa has: F32, F64, BF16, I32, I64, BOOL (bytes 0 or 1). Any other dtype, a malformed header,
// offsets that do not tile the data exactly, a file of the wrong length, or a tensor whose bytes
// do not match its stored checksum is an error.
Checkpoint load_safetensors(const std::string& path);

}  // namespace wavspa::nn
