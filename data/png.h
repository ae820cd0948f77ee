// 8-bit grayscale PNG files through libpng's simplified API (png_image).
//
//   data::write_png("out/a.png", 2, 1, {0, 255});    // one row: a black and a white pixel
//   data::GrayImage im = data::read_png("out/a.png"); // im.width 2, im.height 1, im.pixels {0, 255}
//
// read_png converts whatever it finds (palette, RGB, 16-bit, alpha) to 8-bit gray, so any PNG
// a person drops into a data folder reads; files we write read back byte for byte. Every
// failure (missing file, not a PNG, truncated data, a failed write) throws wavspa::Error
// naming the path and libpng's message.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wavspa::data {

struct GrayImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;  // height rows of width values, top row first
};

// Writes path + ".tmp" and renames it over path, so a reader never sees half a file.
void write_png(const std::string& path, int64_t width, int64_t height, const std::vector<uint8_t>& gray);
GrayImage read_png(const std::string& path);

}  // namespace wavspa::data
