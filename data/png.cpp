#include "data/png.h"

#include <png.h>

#include <filesystem>

#include "core/error.h"

namespace wavspa::data {

void write_png(const std::string& path, int64_t width, int64_t height, const std::vector<uint8_t>& gray) {
  WAVSPA_CHECK(width >= 1 && height >= 1 && width <= 0x7fffffff && height <= 0x7fffffff, "write_png: '",
               path, "': bad size ", width, "x", height);
  WAVSPA_CHECK((int64_t)gray.size() == width * height, "write_png: '", path, "': ", gray.size(),
               " pixels for a ", width, "x", height, " image");
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = (png_uint_32)width;
  image.height = (png_uint_32)height;
  image.format = PNG_FORMAT_GRAY;
  const std::string tmp = path + ".tmp";
  const int ok = png_image_write_to_file(&image, tmp.c_str(), 0, gray.data(), 0, nullptr);
  const std::string message = image.message;  // copied before png_image_free clears the state
  png_image_free(&image);
  std::error_code ec, ignored;  // removing the leftover is best effort: the first error is what matters
  if (!ok) std::filesystem::remove(tmp, ignored);
  WAVSPA_CHECK(ok, "write_png: cannot write '", path, "': ", message);
  std::filesystem::rename(tmp, path, ec);
  if (ec) std::filesystem::remove(tmp, ignored);
  WAVSPA_CHECK(!ec, "write_png: cannot rename '", tmp, "' to '", path, "': ", ec.message());
}

GrayImage read_png(const std::string& path) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  // libpng's message for a missing file is the bare strerror text; ours says which step failed.
  if (!png_image_begin_read_from_file(&image, path.c_str())) {
    const std::string message = image.message;
    png_image_free(&image);
    throw Error(str("read_png: cannot read '", path, "': ", message));
  }
  image.format = PNG_FORMAT_GRAY;
  GrayImage out;
  out.width = image.width;
  out.height = image.height;
  // Zeroed, because an image with alpha is composited onto the buffer's contents (a black
  // background) when the background argument is null.
  out.pixels.assign(PNG_IMAGE_SIZE(image), 0);
  const int ok = png_image_finish_read(&image, nullptr, out.pixels.data(), 0, nullptr);
  const std::string message = image.message;
  png_image_free(&image);
  WAVSPA_CHECK(ok, "read_png: cannot decode '", path, "': ", message);
  return out;
}

}  // namespace wavspa::data
