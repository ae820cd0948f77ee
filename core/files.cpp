#include "core/files.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace wavspa {

std::string read_text_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  WAVSPA_CHECK(!std::filesystem::is_directory(path, ec), what, ": '", path, "' is a folder, not a file");
  std::ifstream in(path);
  WAVSPA_CHECK(in.good(), what, ": cannot open '", path, "'");
  std::stringstream ss;
  ss << in.rdbuf();
  WAVSPA_CHECK(!in.bad(), what, ": reading '", path, "' failed");
  return ss.str();
}

void write_file_atomic(const std::string& path, const std::string& bytes, const std::string& what) {
  const std::string tmp = str(path, ".tmp.", ::getpid());
  std::error_code ec, ignored;  // removing the leftover is best effort: the first error is what matters
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    WAVSPA_CHECK(out.good(), what, ": cannot write '", tmp, "'");
    out.write(bytes.data(), (std::streamsize)bytes.size());
    out.flush();
    if (!out.good()) std::filesystem::remove(tmp, ignored);
    WAVSPA_CHECK(out.good(), what, ": writing '", tmp, "' failed (disk full?)");
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) std::filesystem::remove(tmp, ignored);
  WAVSPA_CHECK(!ec, what, ": cannot rename '", tmp, "' to '", path, "': ", ec.message());
}

}  // namespace wavspa
