#include "core/runtime.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <utility>

#include "core/error.h"

namespace wavspa {

namespace {
std::atomic<MatmulPrecision> g_matmul_precision{MatmulPrecision::Float32};
const std::pair<MatmulPrecision, const char*> kPrecisionNames[] = {
    {MatmulPrecision::Float32, "fp32"},
    {MatmulPrecision::TF32, "tf32"},
    {MatmulPrecision::BFloat16, "bf16"},
};
thread_local bool t_autocast = false;
std::atomic<int64_t> g_attention_scratch{int64_t(256) << 20};
}  // namespace

void set_attention_scratch_limit(int64_t bytes) {
  WAVSPA_CHECK(bytes >= 0, "set_attention_scratch_limit: bytes must be >= 0, got ", bytes);
  g_attention_scratch.store(bytes);
}
int64_t attention_scratch_limit() { return g_attention_scratch.load(); }

void set_autocast(bool enabled) { t_autocast = enabled; }
bool autocast_enabled() { return t_autocast; }

void set_matmul_precision(MatmulPrecision p) { g_matmul_precision.store(p); }
MatmulPrecision matmul_precision() { return g_matmul_precision.load(); }

const char* matmul_precision_name(MatmulPrecision p) {
  for (auto& [q, name] : kPrecisionNames)
    if (q == p) return name;
  return "?";
}

const std::vector<std::string>& matmul_precision_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (auto& [p, name] : kPrecisionNames) v.push_back(name);
    return v;
  }();
  return names;
}

MatmulPrecision matmul_precision_from_name(const std::string& name) {
  for (auto& [p, n] : kPrecisionNames)
    if (name == n) return p;
  throw Error(str("unknown matmul precision '", name, "'; valid: ", matmul_precision_names()));
}

int64_t process_rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  long long size = 0, resident = 0;
  const int got = std::fscanf(f, "%lld %lld", &size, &resident);
  std::fclose(f);
  const long page = ::sysconf(_SC_PAGESIZE);
  return got == 2 && page > 0 ? (int64_t)resident * page : -1;
}

}  // namespace wavspa
