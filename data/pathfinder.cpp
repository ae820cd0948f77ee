#include "data/pathfinder.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "data/png.h"

namespace wavspa::data {

namespace {

namespace fs = std::filesystem;

// Examples per imgs/C folder and metadata/C.npy file, as in LRA's release.
constexpr int64_t kChunk = 1000;

// A uniform integer in [0, n) from the generator's next Philox block.
int64_t draw(Generator& gen, int64_t n) {
  PhiloxState s = gen.reserve(1);
  auto bits = philox4x32(s.offset, 0, s.seed);
  uint64_t wide = ((uint64_t)bits[0] << 32) | bits[1];
  return (int64_t)(wide % (uint64_t)n);
}

// A uniform double in [0, 1) with 53 random bits from the next Philox block.
double uniform(Generator& gen) {
  PhiloxState s = gen.reserve(1);
  auto bits = philox4x32(s.offset, 0, s.seed);
  uint64_t wide = (((uint64_t)bits[0] << 32) | bits[1]) >> 11;
  return (double)wide * (1.0 / 9007199254740992.0);  // 2^-53
}

double segment_distance(double px, double py, const PathfinderPoint& a, const PathfinderPoint& b) {
  const double dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? ((px - a.x) * dx + (py - a.y) * dy) / len2 : 0.0;
  t = std::clamp(t, 0.0, 1.0);
  return std::hypot(px - (a.x + t * dx), py - (a.y + t * dy));
}

// Ink is solid within `radius` + 1/4 of a shape and fades to nothing half a pixel further
// out: a dash (radius 0) is a line about one and a half pixels wide with soft edges, a marker
// a round dot. The pixels with any ink (centre closer than radius + 3/4) are the shape's
// footprint. 3/4 > sqrt(2)/2 puts ink in every pixel a dash passes through, so a dash is
// one connected stroke and the pixels holding the ends of two consecutive dashes are at
// most `gap` apart.
struct Canvas {
  int64_t size;
  std::vector<float> ink;

  explicit Canvas(int64_t n) : size(n), ink(n * n, 0.f) {}

  // Calls f(pixel index, ink) for every footprint pixel of the segment a-b (a point if a == b).
  template <typename F>
  static void footprint(int64_t size, const PathfinderPoint& a, const PathfinderPoint& b, double radius, F&& f) {
    const double reach = radius + 0.75;
    const int64_t c0 = std::max<int64_t>(0, (int64_t)std::floor(std::min(a.x, b.x) - reach));
    const int64_t c1 = std::min<int64_t>(size - 1, (int64_t)std::floor(std::max(a.x, b.x) + reach));
    const int64_t r0 = std::max<int64_t>(0, (int64_t)std::floor(std::min(a.y, b.y) - reach));
    const int64_t r1 = std::min<int64_t>(size - 1, (int64_t)std::floor(std::max(a.y, b.y) + reach));
    for (int64_t r = r0; r <= r1; ++r)
      for (int64_t c = c0; c <= c1; ++c) {
        const double d = segment_distance(c + 0.5, r + 0.5, a, b);
        if (d < reach) f(r * size + c, (float)std::min(1.0, 2 * (reach - d)));
      }
  }

  void draw(const PathfinderPoint& a, const PathfinderPoint& b, double radius) {
    footprint(size, a, b, radius, [&](int64_t i, float v) { ink[i] = std::max(ink[i], v); });
  }
};

bool inside(const PathfinderPoint& p, double margin, int64_t size) {
  return p.x >= margin && p.y >= margin && p.x <= (double)size - margin && p.y <= (double)size - margin;
}

// `blocked` marks the pixels closer than `separation` to a placed path.
bool hits(int64_t size, const std::vector<uint8_t>& blocked, const PathfinderPoint& a,
          const PathfinderPoint& b, double radius) {
  bool hit = false;
  Canvas::footprint(size, a, b, radius, [&](int64_t i, float) { hit = hit || blocked[i]; });
  return hit;
}

// One path of `length` dashes that stays inside the image and off `blocked`, with marker
// discs on the ends marked in `ends` (front, back). Grows dash by dash; a dash that would
// leave the image or touch another path is re-aimed (a new turn within max_turn) a few
// times before the whole attempt is given up. Returns false if no attempt succeeded.
bool place_path(Generator& gen, const PathfinderOptions& o, int64_t length, const std::vector<uint8_t>& blocked,
                std::array<bool, 2> ends, PathfinderPath& out) {
  const int64_t n = o.size;
  const double r = (double)o.marker_radius;
  const double dash = (double)o.dash_length, gap = (double)o.gap;
  constexpr int kAims = 8;
  for (int64_t attempt = 0; attempt < o.max_attempts; ++attempt) {
    PathfinderPoint p{1 + uniform(gen) * (double)(n - 2), 1 + uniform(gen) * (double)(n - 2)};
    if (ends[0] && (!inside(p, r + 1, n) || hits(n, blocked, p, p, r))) continue;
    double heading = 0;
    std::vector<PathfinderPoint> pts;
    bool ok = true;
    for (int64_t k = 0; k < length && ok; ++k) {
      ok = false;
      for (int aim = 0; aim < kAims && !ok; ++aim) {
        // The first dash may point anywhere; later ones turn by at most max_turn.
        const double h = k == 0 ? 2 * std::numbers::pi * uniform(gen) : heading + (2 * uniform(gen) - 1) * o.max_turn;
        const PathfinderPoint a = k == 0 ? p : PathfinderPoint{p.x + gap * std::cos(h), p.y + gap * std::sin(h)};
        const PathfinderPoint b{a.x + dash * std::cos(h), a.y + dash * std::sin(h)};
        const bool last = k + 1 == length;
        if (!inside(a, 1, n) || !inside(b, last && ends[1] ? r + 1 : 1, n) || hits(n, blocked, a, b, 0)) continue;
        if (last && ends[1] && hits(n, blocked, b, b, r)) continue;
        pts.push_back(a);
        pts.push_back(b);
        p = b;
        heading = h;
        ok = true;
      }
    }
    if (ok) {
      out.points = std::move(pts);
      return true;
    }
  }
  return false;
}

void check_options(const PathfinderOptions& o) {
  WAVSPA_CHECK(o.size >= 8, "generate_pathfinder: size must be >= 8, got ", o.size);
  WAVSPA_CHECK(o.path_length >= 1 && o.distractor_length >= 1 && o.dash_length >= 1 && o.gap >= 1,
               "generate_pathfinder: path_length, distractor_length, dash_length and gap must be >= 1, got ",
               o.path_length, ", ", o.distractor_length, ", ", o.dash_length, ", ", o.gap);
  WAVSPA_CHECK(o.num_distractors >= 0 && o.marker_radius >= 0 && o.max_attempts >= 1, "generate_pathfinder: "
               "num_distractors and marker_radius must be >= 0 and max_attempts >= 1, got ",
               o.num_distractors, ", ", o.marker_radius, ", ", o.max_attempts);
  WAVSPA_CHECK(o.max_turn >= 0 && o.max_turn <= std::numbers::pi, "generate_pathfinder: max_turn must be "
               "in [0, pi] radians, got ", o.max_turn);
  // Two dashes of one path are `gap` apart; two paths at least `separation`. With gap <
  // separation the picture alone decides what is connected.
  WAVSPA_CHECK(o.separation > o.gap, "generate_pathfinder: separation (", o.separation,
               ") must be larger than gap (", o.gap, "), or two paths could look like one");
}

}  // namespace

PathfinderExample generate_pathfinder(Generator& gen, const PathfinderOptions& o, int label) {
  check_options(o);
  WAVSPA_CHECK(label == 0 || label == 1, "generate_pathfinder: label must be 0 or 1, got ", label);
  const int64_t n = o.size, sep = o.separation;
  const double r = (double)o.marker_radius;
  // Marker ends per main path: a positive marks both ends of path 0; a negative one end
  // (front or back, at random) of paths 0 and 1. The other paths are unmarked.
  std::array<std::array<bool, 2>, 2> marked{};
  if (label == 1) {
    marked[0] = {true, true};
  } else {
    marked[0][draw(gen, 2)] = true;
    marked[1][draw(gen, 2)] = true;
  }
  const int64_t num_paths = 2 + o.num_distractors;
  constexpr int kRestarts = 100;
  for (int restart = 0; restart < kRestarts; ++restart) {
    std::vector<uint8_t> blocked(n * n, 0);
    PathfinderExample ex;
    ex.size = n;
    ex.label = label;
    bool ok = true;
    for (int64_t i = 0; i < num_paths && ok; ++i) {
      const std::array<bool, 2> ends = i < 2 ? marked[i] : std::array<bool, 2>{false, false};
      PathfinderPath path;
      ok = place_path(gen, o, i < 2 ? o.path_length : o.distractor_length, blocked, ends, path);
      if (!ok) break;
      // Keep later paths `sep` pixels (Chebyshev) from every footprint pixel of this one.
      std::vector<uint8_t> mine(n * n, 0);
      auto mark = [&](int64_t idx, float) { mine[idx] = 1; };
      for (size_t k = 0; k + 1 < path.points.size(); k += 2)
        Canvas::footprint(n, path.points[k], path.points[k + 1], 0, mark);
      if (ends[0]) Canvas::footprint(n, path.points.front(), path.points.front(), r, mark);
      if (ends[1]) Canvas::footprint(n, path.points.back(), path.points.back(), r, mark);
      for (int64_t y = 0; y < n; ++y)
        for (int64_t x = 0; x < n; ++x) {
          if (!mine[y * n + x]) continue;
          for (int64_t yy = std::max<int64_t>(0, y - sep + 1); yy <= std::min(n - 1, y + sep - 1); ++yy)
            for (int64_t xx = std::max<int64_t>(0, x - sep + 1); xx <= std::min(n - 1, x + sep - 1); ++xx)
              blocked[yy * n + xx] = 1;
        }
      for (int e = 0; e < 2; ++e) {
        if (!ends[e]) continue;
        const int m = ex.marker_path[0] < 0 ? 0 : 1;
        ex.markers[m] = e == 0 ? path.points.front() : path.points.back();
        ex.marker_path[m] = i;
      }
      ex.paths.push_back(std::move(path));
    }
    if (!ok) continue;
    Canvas canvas(n);
    for (const PathfinderPath& path : ex.paths)
      for (size_t k = 0; k + 1 < path.points.size(); k += 2) canvas.draw(path.points[k], path.points[k + 1], 0);
    for (const PathfinderPoint& m : ex.markers) canvas.draw(m, m, r);
    ex.pixels.resize(n * n);
    for (int64_t i = 0; i < n * n; ++i) ex.pixels[i] = (uint8_t)std::lround(255.0 * canvas.ink[i]);
    return ex;
  }
  throw Error(str("generate_pathfinder: could not place ", num_paths, " paths of ", o.path_length,
                  " dashes ", o.separation, " pixels apart in a ", n, "x", n, " image after ", kRestarts,
                  " restarts; use fewer distractors, shorter paths or a larger image"));
}

PathfinderDataset generate_pathfinder_dataset(uint64_t seed, int64_t n_train, int64_t n_val,
                                              int64_t n_test, const PathfinderOptions& o) {
  WAVSPA_CHECK(n_train >= 0 && n_val >= 0 && n_test >= 0, "generate_pathfinder_dataset: split sizes must be "
               ">= 0, got ", n_train, ", ", n_val, ", ", n_test);
  check_options(o);
  Generator gen(seed);
  auto split = [&](int64_t count) {
    // Balanced labels in shuffled order, so neither the count nor the position gives a label away.
    std::vector<int> labels(count);
    for (int64_t i = 0; i < count; ++i) labels[i] = (int)(i % 2);
    for (int64_t i = count - 1; i > 0; --i) std::swap(labels[i], labels[draw(gen, i + 1)]);
    std::vector<PathfinderExample> out;
    out.reserve(count);
    for (int label : labels) out.push_back(generate_pathfinder(gen, o, label));
    return out;
  };
  PathfinderDataset d;
  d.train = split(n_train);
  d.val = split(n_val);
  d.test = split(n_test);
  return d;
}

void write_pathfinder_split(const std::string& dir, const std::vector<PathfinderExample>& examples) {
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "metadata", ec);
  WAVSPA_CHECK(!ec, "write_pathfinder_split: cannot create '", dir, "/metadata': ", ec.message());
  // An empty split still gets metadata/0.npy (empty), so it reads back as an empty split.
  for (size_t first = 0; first < examples.size() || first == 0; first += kChunk) {
    const std::string chunk = std::to_string(first / kChunk);
    const fs::path imgs = fs::path(dir) / "imgs" / chunk;
    fs::create_directories(imgs, ec);
    WAVSPA_CHECK(!ec, "write_pathfinder_split: cannot create '", imgs.string(), "': ", ec.message());
    std::ostringstream meta;
    for (size_t k = first; k < std::min(examples.size(), first + kChunk); ++k) {
      const PathfinderExample& ex = examples[k];
      const std::string file = "sample_" + std::to_string(k - first) + ".png";
      WAVSPA_CHECK(ex.size >= 1 && (int64_t)ex.pixels.size() == ex.size * ex.size, "write_pathfinder_split: "
                   "example ", k, " has ", ex.pixels.size(), " pixels for size ", ex.size);
      write_png((imgs / file).string(), ex.size, ex.size, ex.pixels);
      meta << "imgs/" << chunk << ' ' << file << ' ' << (k - first) << ' ' << ex.label << '\n';
    }
    const std::string path = (fs::path(dir) / "metadata" / (chunk + ".npy")).string();
    write_file_atomic(path, meta.str(), "write_pathfinder_split");
  }
}

std::vector<PathfinderExample> read_pathfinder_split(const std::string& dir) {
  const fs::path meta_dir = fs::path(dir) / "metadata";
  std::error_code ec;
  // Numeric names in numeric order (2.npy before 10.npy), then any others by name.
  struct Entry {
    bool numeric;
    int64_t number;
    fs::path path;
  };
  std::vector<Entry> files;
  for (fs::directory_iterator it(meta_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() != ".npy" || !it->is_regular_file()) continue;
    const std::string stem = it->path().stem().string();
    int64_t number = 0;
    auto [ptr, err] = std::from_chars(stem.data(), stem.data() + stem.size(), number);
    files.push_back({err == std::errc() && ptr == stem.data() + stem.size(), number, it->path()});
  }
  WAVSPA_CHECK(!ec, "read_pathfinder_split: cannot list '", meta_dir.string(), "': ", ec.message());
  WAVSPA_CHECK(!files.empty(), "read_pathfinder_split: no metadata/*.npy files in '", dir, "'");
  std::sort(files.begin(), files.end(), [](const Entry& a, const Entry& b) {
    if (a.numeric != b.numeric) return a.numeric;
    if (a.numeric && a.number != b.number) return a.number < b.number;
    return a.path < b.path;
  });

  std::vector<PathfinderExample> out;
  for (const Entry& f : files) {
    const std::string name = f.path.string();
    std::ifstream in(f.path, std::ios::binary);
    WAVSPA_CHECK(in.good(), "read_pathfinder_split: cannot open '", name, "'");
    std::string line;
    for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
      std::istringstream ss(line);
      std::vector<std::string> fields;
      for (std::string field; ss >> field;) fields.push_back(field);
      if (fields.empty()) continue;  // LRA's files end in a newline; blank lines carry nothing
      WAVSPA_CHECK(fields.size() >= 4, name, ":", lineno, ": expected 'folder file index label', got '",
                   line, "'");
      const std::string& l = fields[3];
      WAVSPA_CHECK(l == "0" || l == "1", name, ":", lineno, ": label '", l, "' is not 0 or 1");
      const std::string image_path = (fs::path(dir) / fields[0] / fields[1]).string();
      GrayImage image;
      try {
        image = read_png(image_path);
      } catch (const Error& e) {
        throw Error(str(name, ":", lineno, ": ", e.what()));
      }
      WAVSPA_CHECK(image.width == image.height, name, ":", lineno, ": image '", image_path, "' is ",
                   image.width, "x", image.height, ", not square");
      WAVSPA_CHECK(out.empty() || image.width == out.front().size, name, ":", lineno, ": image '", image_path,
                   "' is ", image.width, "x", image.height, " but the first image is ", out.front().size,
                   "x", out.front().size);
      PathfinderExample ex;
      ex.size = image.width;
      ex.pixels = std::move(image.pixels);
      ex.label = l == "1" ? 1 : 0;
      out.push_back(std::move(ex));
    }
  }
  return out;
}

TokenDataset pathfinder_tokens(const std::vector<PathfinderExample>& examples, const std::string& name) {
  WAVSPA_CHECK(!examples.empty(), "pathfinder_tokens: '", name, "' has no examples");
  TokenDataset d;
  d.name = name;
  d.vocab_size = 256;
  d.num_classes = 2;
  const int64_t size = examples.front().size;
  d.seq_len = size * size;
  for (size_t i = 0; i < examples.size(); ++i) {
    const PathfinderExample& ex = examples[i];
    WAVSPA_CHECK(ex.size == size && (int64_t)ex.pixels.size() == size * size, name, ": example ", i, " is ",
                 ex.size, "x", ex.size, " with ", ex.pixels.size(), " pixels; example 0 is ", size, "x", size);
    d.inputs.emplace_back(ex.pixels.begin(), ex.pixels.end());
    d.labels.push_back(ex.label);
  }
  validate(d);
  return d;
}

}  // namespace wavspa::data
