// Pathfinder: generation (seeded, balanced, each label checked from the geometry and again
// from the pixels alone), PNG files, LRA's split folders, malformed folders from the fixtures
// in tests/fixtures/pathfinder/, the token form, and the gen-data tool.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <numbers>

#include "data/pathfinder.h"
#include "data/png.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::data;
using namespace wavspa::test;

namespace {

namespace fs = std::filesystem;

const std::string kFixtures = "tests/fixtures/pathfinder/";


void put_png(const std::string& path, int64_t width, int64_t height, const std::vector<uint8_t>& gray) {
  fs::create_directories(fs::path(path).parent_path());
  write_png(path, width, height, gray);
}


double dist(const PathfinderPoint& a, const PathfinderPoint& b) { return std::hypot(a.x - b.x, a.y - b.y); }

double segment_dist(double px, double py, const PathfinderPoint& a, const PathfinderPoint& b) {
  const double dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
  const double t = len2 > 0 ? std::clamp(((px - a.x) * dx + (py - a.y) * dy) / len2, 0.0, 1.0) : 0.0;
  return std::hypot(px - a.x - t * dx, py - a.y - t * dy);
}

// Connected components of the inked pixels, where two inked pixels within Chebyshev distance
// `reach` belong together (bridging the gaps between the dashes of a path). Returns a
// component id per pixel, -1 for background, and the number of components in `count`.
std::vector<int> components(const std::vector<uint8_t>& pixels, int64_t size, int64_t reach, int& count) {
  std::vector<int> id(pixels.size(), -1);
  count = 0;
  for (int64_t start = 0; start < size * size; ++start) {
    if (pixels[start] == 0 || id[start] >= 0) continue;
    std::deque<int64_t> queue{start};
    id[start] = count;
    while (!queue.empty()) {
      const int64_t at = queue.front();
      queue.pop_front();
      const int64_t r = at / size, c = at % size;
      for (int64_t rr = std::max<int64_t>(0, r - reach); rr <= std::min(size - 1, r + reach); ++rr)
        for (int64_t cc = std::max<int64_t>(0, c - reach); cc <= std::min(size - 1, c + reach); ++cc) {
          const int64_t next = rr * size + cc;
          if (pixels[next] == 0 || id[next] >= 0) continue;
          id[next] = count;
          queue.push_back(next);
        }
    }
    ++count;
  }
  return id;
}

int64_t pixel_of(const PathfinderPoint& p, int64_t size) {
  return (int64_t)std::floor(p.y) * size + (int64_t)std::floor(p.x);
}

// Checks one generated example against its options without trusting ex.label or
// ex.marker_path: the geometry (shape of every path, where the markers sit) and then the
// pixels alone (which inked strokes the markers are connected through).
void check_example(const PathfinderExample& ex, const PathfinderOptions& o, int label) {
  const int64_t n = o.size;
  REQUIRE(ex.size == n);
  REQUIRE((int64_t)ex.pixels.size() == n * n);
  CHECK(ex.label == label);
  REQUIRE((int64_t)ex.paths.size() == 2 + o.num_distractors);

  // Each path: the right number of dashes, each dash_length long, gap apart, turning by at
  // most max_turn, inside the image.
  for (size_t i = 0; i < ex.paths.size(); ++i) {
    const auto& pts = ex.paths[i].points;
    REQUIRE((int64_t)pts.size() == 2 * (i < 2 ? o.path_length : o.distractor_length));
    for (const PathfinderPoint& p : pts) {
      CHECK(p.x >= 0);
      CHECK(p.y >= 0);
      CHECK(p.x <= (double)n);
      CHECK(p.y <= (double)n);
    }
    for (size_t k = 0; k + 1 < pts.size(); k += 2) {
      CHECK(dist(pts[k], pts[k + 1]) == doctest::Approx((double)o.dash_length));
      if (k + 2 < pts.size()) {
        CHECK(dist(pts[k + 1], pts[k + 2]) == doctest::Approx((double)o.gap));
        const double h0 = std::atan2(pts[k + 1].y - pts[k].y, pts[k + 1].x - pts[k].x);
        const double h1 = std::atan2(pts[k + 3].y - pts[k + 2].y, pts[k + 3].x - pts[k + 2].x);
        const double turn = std::remainder(h1 - h0, 2 * std::numbers::pi);
        CHECK(std::abs(turn) <= o.max_turn + 1e-9);
      }
    }
  }

  // Geometry: each marker is the end of exactly one path; a positive has both ends of one
  // path marked, a negative one end each of two different paths.
  int64_t on[2] = {-1, -1};
  for (int m = 0; m < 2; ++m) {
    int found = 0;
    for (size_t i = 0; i < ex.paths.size(); ++i)
      for (const PathfinderPoint& end : {ex.paths[i].points.front(), ex.paths[i].points.back()})
        if (dist(end, ex.markers[m]) < 1e-9) ++found, on[m] = (int64_t)i;
    CHECK_MESSAGE(found == 1, "marker ", m, " is the end of ", found, " paths");
  }
  CHECK(on[0] == ex.marker_path[0]);
  CHECK(on[1] == ex.marker_path[1]);
  CHECK(dist(ex.markers[0], ex.markers[1]) > 1e-9);
  CHECK((on[0] == on[1]) == (label == 1));

  // Rendering matches the geometry: the markers are full white, every dash's midpoint is
  // inked, and every inked pixel lies near a dash or a marker.
  for (const PathfinderPoint& m : ex.markers) CHECK((int)ex.pixels[pixel_of(m, n)] == 255);
  for (const PathfinderPath& p : ex.paths)
    for (size_t k = 0; k + 1 < p.points.size(); k += 2)
      CHECK(ex.pixels[pixel_of({(p.points[k].x + p.points[k + 1].x) / 2, (p.points[k].y + p.points[k + 1].y) / 2}, n)] > 0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < n; ++c) {
      if (ex.pixels[r * n + c] == 0) continue;
      double nearest = 1e9;
      for (const PathfinderPath& p : ex.paths)
        for (size_t k = 0; k + 1 < p.points.size(); k += 2)
          nearest = std::min(nearest, segment_dist(c + 0.5, r + 0.5, p.points[k], p.points[k + 1]));
      for (const PathfinderPoint& m : ex.markers)
        nearest = std::min(nearest, dist({c + 0.5, r + 0.5}, m) - (double)o.marker_radius);
      CHECK_MESSAGE(nearest < 1.0, "stray ink at row ", r, " column ", c);
    }

  // Pixels alone: bridging gaps up to `gap` pixels joins the dashes of a path and nothing
  // else, so there is one component per path, and the markers share one iff the label is 1.
  int count = 0;
  std::vector<int> id = components(ex.pixels, n, o.gap, count);
  CHECK(count == (int)ex.paths.size());
  const int a = id[pixel_of(ex.markers[0], n)], b = id[pixel_of(ex.markers[1], n)];
  CHECK(a >= 0);
  CHECK(b >= 0);
  CHECK((a == b) == (label == 1));
}

PathfinderExample tiny(int64_t size, uint8_t seed, int label) {
  PathfinderExample ex;
  ex.size = size;
  ex.label = label;
  for (int64_t i = 0; i < size * size; ++i) ex.pixels.push_back((uint8_t)(seed + 37 * i));
  return ex;
}

}  // namespace

TEST_CASE("pathfinder: the same seed gives the same images, another seed other ones") {
  PathfinderOptions o;
  Generator g1(5), g2(5), g3(6);
  int differ = 0;
  for (int i = 0; i < 20; ++i) {
    PathfinderExample a = generate_pathfinder(g1, o, i % 2), b = generate_pathfinder(g2, o, i % 2);
    PathfinderExample c = generate_pathfinder(g3, o, i % 2);
    CHECK(a.pixels == b.pixels);
    CHECK(a.markers[0].x == b.markers[0].x);
    CHECK(a.paths.size() == b.paths.size());
    differ += a.pixels != c.pixels;
  }
  CHECK(differ == 20);
  PathfinderDataset d1 = generate_pathfinder_dataset(3, 10, 4, 4, o), d2 = generate_pathfinder_dataset(3, 10, 4, 4, o);
  PathfinderDataset d3 = generate_pathfinder_dataset(4, 10, 4, 4, o);
  for (int i = 0; i < 10; ++i) {
    CHECK(d1.train[i].pixels == d2.train[i].pixels);
    CHECK(d1.train[i].label == d2.train[i].label);
    CHECK(d1.train[i].pixels != d3.train[i].pixels);
  }
  CHECK(d1.test[3].pixels == d2.test[3].pixels);
  CHECK(d1.val[0].pixels != d1.test[0].pixels);  // the splits continue one stream
}

TEST_CASE("pathfinder: labels are balanced and in shuffled order") {
  PathfinderDataset d = generate_pathfinder_dataset(1, 101, 20, 0, {});
  REQUIRE(d.train.size() == 101);
  REQUIRE(d.val.size() == 20);
  CHECK(d.test.empty());
  int positives = 0, alternating = 0;
  for (size_t i = 0; i < d.train.size(); ++i) {
    positives += d.train[i].label;
    alternating += d.train[i].label == (int)(i % 2);
  }
  CHECK((positives == 50 || positives == 51));
  CHECK(alternating < 90);  // not simply 0, 1, 0, 1, ...
  int val_positives = 0;
  for (const auto& ex : d.val) val_positives += ex.label;
  CHECK(val_positives == 10);
  check_error([] { generate_pathfinder_dataset(1, -1, 0, 0, {}); }, {"split sizes", "-1"});
}

TEST_CASE("pathfinder: each label is right by the geometry and by the pixels alone") {
  PathfinderOptions o;
  Generator gen(21);
  for (int i = 0; i < 300; ++i) {
    CAPTURE(i);
    check_example(generate_pathfinder(gen, o, i % 2), o, i % 2);
  }
  // Other sizes and densities keep the same guarantees.
  PathfinderOptions big{.size = 64, .path_length = 12, .distractor_length = 4, .num_distractors = 8};
  PathfinderOptions fine{.path_length = 9, .distractor_length = 3, .dash_length = 2, .gap = 1, .separation = 2};
  PathfinderOptions bare{.num_distractors = 0, .max_turn = 0.0, .marker_radius = 2};
  for (const PathfinderOptions& opt : {big, fine, bare})
    for (int i = 0; i < 40; ++i) {
      CAPTURE(opt.size);
      CAPTURE(i);
      check_example(generate_pathfinder(gen, opt, i % 2), opt, i % 2);
    }
  CHECK(generate_pathfinder(gen, big, 1).pixels.size() == 64 * 64);
}

TEST_CASE("pathfinder: options that cannot work are errors") {
  Generator gen(0);
  check_error([&] { generate_pathfinder(gen, {.gap = 3}, 1); }, {"separation (3)", "gap (3)"});
  check_error([&] { generate_pathfinder(gen, {.size = 4}, 1); }, {"size", "4"});
  check_error([&] { generate_pathfinder(gen, {.path_length = 0}, 1); }, {"path_length"});
  check_error([&] { generate_pathfinder(gen, {.max_turn = 4.0}, 1); }, {"max_turn"});
  check_error([&] { generate_pathfinder(gen, {}, 2); }, {"label", "2"});
  check_error([&] { generate_pathfinder(gen, {.size = 16, .num_distractors = 30, .max_attempts = 5}, 0); },
              {"could not place 32 paths", "16x16"});
}

TEST_CASE("png: a written image reads back byte for byte; failures name the file") {
  TempDir tmp("png");
  const std::string dir = tmp.path;
  std::vector<uint8_t> gray;
  for (int i = 0; i < 7 * 5; ++i) gray.push_back((uint8_t)(i * 7 + 3));
  write_png(dir + "/a.png", 7, 5, gray);
  CHECK(!fs::exists(dir + "/a.png.tmp"));
  GrayImage im = read_png(dir + "/a.png");
  CHECK(im.width == 7);
  CHECK(im.height == 5);
  CHECK(im.pixels == gray);
  gray.assign(35, 200);  // overwriting replaces the file
  write_png(dir + "/a.png", 7, 5, gray);
  CHECK(read_png(dir + "/a.png").pixels == gray);

  check_error([&] { read_png(dir + "/missing.png"); }, {"read_png", "missing.png"});
  check_error([&] { read_png(kFixtures + "not_png/imgs/0/sample_0.png"); }, {"not_png/imgs/0/sample_0.png"});
  check_error([&] { read_png(kFixtures + "truncated_png/imgs/0/sample_0.png"); },
              {"truncated_png/imgs/0/sample_0.png"});
  check_error([&] { write_png(dir + "/no/such/folder/b.png", 7, 5, gray); }, {"write_png", "no/such/folder/b.png"});
  check_error([&] { write_png(dir + "/c.png", 6, 5, gray); }, {"write_png", "c.png", "35 pixels", "6x5"});
  fs::remove_all(dir);
}

TEST_CASE("pathfinder: split folders use LRA's layout and round trip; tokens") {
  TempDir tmp("pathfinder_split");
  const std::string dir = tmp.path;
  PathfinderDataset d = generate_pathfinder_dataset(8, 12, 0, 0, {});
  write_pathfinder_split(dir + "/train", d.train);
  CHECK(fs::exists(dir + "/train/imgs/0/sample_11.png"));
  std::ifstream meta(dir + "/train/metadata/0.npy");
  std::string first;
  std::getline(meta, first);
  CHECK(first == str("imgs/0 sample_0.png 0 ", d.train[0].label));
  std::vector<PathfinderExample> back = read_pathfinder_split(dir + "/train");
  REQUIRE(back.size() == 12);
  for (size_t i = 0; i < back.size(); ++i) {
    CHECK(back[i].size == 32);
    CHECK(back[i].pixels == d.train[i].pixels);
    CHECK(back[i].label == d.train[i].label);
    CHECK(back[i].paths.empty());  // files hold pixels, not geometry
  }

  // More than 1000 examples spill into imgs/1 and metadata/1.npy, numbered from 0 again.
  std::vector<PathfinderExample> many;
  for (int i = 0; i < 1003; ++i) many.push_back(tiny(4, (uint8_t)i, i % 3 == 0));
  write_pathfinder_split(dir + "/many", many);
  CHECK(fs::exists(dir + "/many/imgs/1/sample_2.png"));
  CHECK(fs::exists(dir + "/many/metadata/1.npy"));
  back = read_pathfinder_split(dir + "/many");
  REQUIRE(back.size() == 1003);
  CHECK(back[1002].pixels == many[1002].pixels);
  CHECK(back[999].label == many[999].label);

  // Metadata files are read in numeric order of their names: 2.npy before 10.npy.
  put_png(dir + "/order/imgs/a.png", 4, 4, tiny(4, 1, 0).pixels);
  put_png(dir + "/order/imgs/b.png", 4, 4, tiny(4, 2, 0).pixels);
  write_file(dir + "/order/metadata/10.npy", "imgs b.png 0 0\n");
  write_file(dir + "/order/metadata/2.npy", "imgs a.png 0 1\n\n");
  back = read_pathfinder_split(dir + "/order");
  REQUIRE(back.size() == 2);
  CHECK(back[0].label == 1);
  CHECK(back[1].pixels == tiny(4, 2, 0).pixels);

  TokenDataset t = pathfinder_tokens(d.train, "pathfinder/train");
  CHECK(t.vocab_size == 256);
  CHECK(t.num_classes == 2);
  CHECK(t.seq_len == 1024);
  REQUIRE(t.size() == 12);
  CHECK(t.inputs[5] == std::vector<int32_t>(d.train[5].pixels.begin(), d.train[5].pixels.end()));
  CHECK(t.labels[5] == d.train[5].label);
  check_error([] { pathfinder_tokens({}, "pf/empty"); }, {"pf/empty", "no examples"});
  check_error([] { pathfinder_tokens({tiny(4, 0, 1), tiny(5, 0, 1)}, "pf/mixed"); }, {"pf/mixed", "example 1", "5x5"});
  fs::remove_all(dir);
}

TEST_CASE("pathfinder: malformed split folders name the file and line") {
  const std::string f = kFixtures;
  CHECK(read_pathfinder_split(f + "valid").size() == 2);
  CHECK(read_pathfinder_split(f + "valid")[1].label == 0);
  check_error([&] { read_pathfinder_split(f + "short_line"); }, {"short_line/metadata/0.npy:2", "expected"});
  check_error([&] { read_pathfinder_split(f + "bad_label"); }, {"bad_label/metadata/0.npy:2", "label 'yes'"});
  check_error([&] { read_pathfinder_split(f + "missing_image"); }, {"missing_image/metadata/0.npy:2", "sample_1.png"});
  check_error([&] { read_pathfinder_split(f + "truncated_png"); }, {"truncated_png/metadata/0.npy:1", "sample_0.png"});
  check_error([&] { read_pathfinder_split(f + "not_png"); }, {"not_png/metadata/0.npy:1", "sample_0.png"});

  TempDir tmp("pathfinder_bad");
  const std::string dir = tmp.path;
  put_png(dir + "/two/imgs/0/a.png", 4, 4, tiny(4, 0, 0).pixels);
  put_png(dir + "/two/imgs/0/b.png", 5, 5, tiny(5, 0, 0).pixels);
  write_file(dir + "/two/metadata/0.npy", "imgs/0 a.png 0 1\nimgs/0 b.png 1 0\n");
  check_error([&] { read_pathfinder_split(dir + "/two"); }, {"0.npy:2", "b.png", "5x5", "first image is 4x4"});
  put_png(dir + "/wide/imgs/0/a.png", 4, 3, std::vector<uint8_t>(12, 9));
  write_file(dir + "/wide/metadata/0.npy", "imgs/0 a.png 0 1\n");
  check_error([&] { read_pathfinder_split(dir + "/wide"); }, {"0.npy:1", "4x3", "not square"});
  write_file(dir + "/range/metadata/0.npy", "imgs/0 a.png 0 2\n");
  check_error([&] { read_pathfinder_split(dir + "/range"); }, {"range/metadata/0.npy:1", "label '2'"});
  fs::create_directories(dir + "/empty/metadata");
  check_error([&] { read_pathfinder_split(dir + "/empty"); }, {"no metadata/*.npy", "empty"});
  check_error([&] { read_pathfinder_split(dir + "/absent"); }, {"absent/metadata"});
  fs::remove_all(dir);
}

TEST_CASE("pathfinder: gen-data writes train, val and test folders that read back") {
  const std::string exe = build_path("gen-data");
  TempDir tmp("pathfinder_tool");
  const std::string dir = tmp.path;
  std::string out;
  int rc = run_command(exe + " --task pathfinder --out " + dir + "/pf --seed 9 --train 6 --val 2 --test 2", out);
  REQUIRE_MESSAGE(rc == 0, out);
  CHECK_MESSAGE(out.find("wrote 6 32x32 images (3 positive)") != std::string::npos, out);
  PathfinderDataset d = generate_pathfinder_dataset(9, 6, 2, 2, {});
  const std::pair<const char*, const std::vector<PathfinderExample>*> splits[] = {
      {"train", &d.train}, {"val", &d.val}, {"test", &d.test}};
  for (const auto& [name, split] : splits) {
    CHECK(fs::exists(dir + "/pf/" + name + "/metadata/0.npy"));
    std::vector<PathfinderExample> back = read_pathfinder_split(dir + "/pf/" + name);
    REQUIRE(back.size() == split->size());
    for (size_t i = 0; i < back.size(); ++i) {
      CHECK(back[i].pixels == (*split)[i].pixels);  // the tool writes what the library makes
      CHECK(back[i].label == (*split)[i].label);
    }
  }
  rc = run_command(exe + " --task pathfinder --out " + dir + "/big --train 2 --val 0 --test 0 --size 48 "
                   "--path-length 8 --distractors 6 --max-turn 0.3",
                   out);
  REQUIRE_MESSAGE(rc == 0, out);
  CHECK(read_pathfinder_split(dir + "/big/train")[1].size == 48);
  CHECK(read_pathfinder_split(dir + "/big/val").empty());  // an empty split reads back empty
  rc = run_command(exe + " --task pathfinder --out " + dir + "/bad --gap 3", out);
  CHECK(rc != 0);
  CHECK_MESSAGE(out.find("error:") != std::string::npos, out);
  CHECK_MESSAGE(out.find("separation") != std::string::npos, out);
  fs::remove_all(dir);
}
