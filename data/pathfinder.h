// Pathfinder (Linsley et al. 2018), the image task of the Long Range Arena (LRA uses 32x32):
// two marker dots and several curved dashed paths; the label says whether the two markers lie
// on the two ends of one path (1) or on one end each of two different paths (0).
//
//   using namespace wavspa;
//   Generator gen(7);
//   data::PathfinderExample ex = data::generate_pathfinder(gen, {}, /*label=*/1);
//   ex.pixels;                    // 32*32 gray values, row-major, background 0, strokes bright
//   ex.marker_path;               // {0, 0}: both markers sit on path 0
//
//   auto d = data::generate_pathfinder_dataset(/*seed=*/0, 800, 100, 100, {});
//   data::write_pathfinder_split("out/train", d.train);  // LRA's imgs/ + metadata/ layout
//   auto back = data::read_pathfinder_split("out/train");
//   data::TokenDataset t = data::pathfinder_tokens(back, "pathfinder/train");  // seq_len 1024
//
// Every example draws two "main" paths of path_length dashes and num_distractors shorter
// ones, so a positive and a negative show the same strokes: only the markers' placement
// differs. A path is a chain of straight dashes separated by gaps; its heading turns by at
// most max_turn between dashes. Paths keep `separation` pixels apart (and gap < separation),
// so whether two markers are connected is decided by the picture alone: a gap inside a path
// is always narrower than the space between two paths.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/random.h"
#include "data/dataset.h"

namespace wavspa::data {

// Defaults chosen for 32x32, after LRA's easiest Pathfinder-32 set ("curv_baseline", contour
// length 6): a main path spans about 28 pixels, and the generator takes about 0.3 ms per image.
// LRA's harder sets (contour length 9 and 14) need finer dashes to fit 32x32, e.g.
// {.path_length = 9, .distractor_length = 3, .dash_length = 2, .gap = 1, .separation = 2};
// an image too crowded to fill throws (see generate_pathfinder). Lengths are in pixels.
struct PathfinderOptions {
  int64_t size = 32;               // image width = height
  int64_t path_length = 6;         // dashes per main path (the two paths that can carry markers)
  int64_t distractor_length = 2;   // dashes per distractor: short clutter around the main paths
  int64_t num_distractors = 4;     // unmarked paths besides the two main ones
  int64_t dash_length = 3;         // length of one straight dash
  int64_t gap = 2;                 // space between two dashes of a path (2 leaves a dark pixel)
  double max_turn = 0.5;           // largest change of heading from one dash to the next, radians
  int64_t marker_radius = 1;       // the marker discs' solid radius (1: a dot about 3 pixels wide)
  int64_t separation = 3;          // least Chebyshev distance between inked pixels of two paths; > gap
  int64_t max_attempts = 50;       // placements tried per path before the example starts over
};

// Pixel coordinates: pixel (row r, column c) is the unit square [c, c+1) x [r, r+1), so its
// centre is (c + 0.5, r + 0.5).
struct PathfinderPoint {
  double x = 0, y = 0;
};

struct PathfinderPath {
  // The dashes in order, as one polyline: dash k runs from points[2k] to points[2k+1], and a
  // gap lies between points[2k+1] and points[2k+2]. Its ends are points.front() and .back().
  std::vector<PathfinderPoint> points;
};

struct PathfinderExample {
  int64_t size = 0;             // the image is size x size
  std::vector<uint8_t> pixels;  // size*size, row-major
  int label = 0;                // 1: both markers on one path; 0: on two different paths
  // The geometry, filled by the generator (empty after read_pathfinder_split, which only
  // has the pixels): every path, the two marker centres, and the path each one sits on.
  std::vector<PathfinderPath> paths;  // paths[0] and paths[1] are the main ones
  std::array<PathfinderPoint, 2> markers{};
  std::array<int64_t, 2> marker_path{-1, -1};
};

// One example with the given label (0 or 1). Options that cannot work (a gap not below the
// separation, a non-positive size, ...) throw wavspa::Error; so does an image too crowded to
// place every path apart from the others after many attempts.
PathfinderExample generate_pathfinder(Generator& gen, const PathfinderOptions& options, int label);

struct PathfinderDataset {
  std::vector<PathfinderExample> train, val, test;
};

// Each split has floor(n/2) or ceil(n/2) positives, in shuffled order; the same seed gives
// the same images, bit for bit.
PathfinderDataset generate_pathfinder_dataset(uint64_t seed, int64_t n_train, int64_t n_val,
                                              int64_t n_test, const PathfinderOptions& options);

// LRA's folder layout, so the files can be shared with LRA's input pipeline. Example k of a
// split in folder D is D/imgs/C/sample_J.png with C = k / 1000 and J = k % 1000, listed in the
// text file D/metadata/C.npy (plain text despite the name, as in LRA's release) by the line
//   "imgs/C sample_J.png J LABEL"
// LRA reads field 0 and 1 as the image path (relative to D) and field 3 as the label.
// Writing replaces files of the same name and leaves other files in D alone; an empty split
// is an empty metadata/0.npy.
void write_pathfinder_split(const std::string& dir, const std::vector<PathfinderExample>& examples);
// Reads every metadata/*.npy of D (in numeric order of their names, then by name) and the
// images they name. A line with fewer than 4 fields, a label other than 0 or 1, an image
// that cannot be read, or one not square or not the size of the first, throws
// wavspa::Error naming "file:line".
std::vector<PathfinderExample> read_pathfinder_split(const std::string& dir);

// The training form: vocabulary 256 (the pixel value is the token id, as in LRA), 2 classes,
// seq_len size*size. Every example must have the same size; an empty list throws, since it
// has no size to take seq_len from.
TokenDataset pathfinder_tokens(const std::vector<PathfinderExample>& examples, const std::string& name);

}  // namespace wavspa::data
