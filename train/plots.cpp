#include "train/plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "core/files.h"

namespace wavspa::train {

namespace {

constexpr double kWidth = 480, kHeight = 300;                       // one panel
constexpr double kLeft = 62, kRight = 16, kTop = 30, kBottom = 44;  // plot area margins
const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// About five round tick values covering [lo, hi].
std::vector<double> ticks(double lo, double hi) {
  const double span = hi - lo;
  const double raw = span / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + 1e-9 * span; t += step) out.push_back(t);
  return out;
}

void panel(std::ostringstream& svg, const Chart& c, double ox, double oy) {
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const Series& s : c.series)
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x0 -= 0.5, x1 += 0.5;
  if (y1 == y0) y0 -= 0.5, y1 += 0.5;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto X = [&](double x) { return ox + kLeft + (x - x0) / (x1 - x0) * pw; };
  auto Y = [&](double y) { return oy + kTop + (1 - (y - y0) / (y1 - y0)) * ph; };

  svg << "<text x=\"" << ox + kWidth / 2 << "\" y=\"" << oy + 18
      << "\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">" << escape(c.title) << "</text>\n";
  svg << "<rect x=\"" << ox + kLeft << "\" y=\"" << oy + kTop << "\" width=\"" << pw << "\" height=\"" << ph
      << "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (double t : ticks(x0, x1))
    svg << "<line x1=\"" << X(t) << "\" y1=\"" << oy + kTop + ph << "\" x2=\"" << X(t) << "\" y2=\""
        << oy + kTop + ph + 4 << "\" stroke=\"#444\"/><text x=\"" << X(t) << "\" y=\"" << oy + kTop + ph + 16
        << "\" text-anchor=\"middle\" font-size=\"11\">" << num(t) << "</text>\n";
  for (double t : ticks(y0, y1))
    svg << "<line x1=\"" << ox + kLeft << "\" y1=\"" << Y(t) << "\" x2=\"" << ox + kLeft + pw << "\" y2=\""
        << Y(t) << "\" stroke=\"#ddd\"/><text x=\"" << ox + kLeft - 6 << "\" y=\"" << Y(t) + 4
        << "\" text-anchor=\"end\" font-size=\"11\">" << num(t) << "</text>\n";
  svg << "<text x=\"" << ox + kLeft + pw / 2 << "\" y=\"" << oy + kHeight - 8
      << "\" text-anchor=\"middle\" font-size=\"12\">" << escape(c.xlabel) << "</text>\n";
  svg << "<text transform=\"translate(" << ox + 14 << "," << oy + kTop + ph / 2
      << ") rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">" << escape(c.ylabel) << "</text>\n";

  for (size_t k = 0; k < c.series.size(); ++k) {
    const Series& s = c.series[k];
    const std::string color = s.color.empty() ? kColors[k % (sizeof kColors / sizeof kColors[0])] : s.color;
    std::ostringstream pts;
    size_t count = 0;
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      pts << X(s.x[i]) << "," << Y(s.y[i]) << " ";
      ++count;
      if (s.markers)
        svg << "<circle cx=\"" << X(s.x[i]) << "\" cy=\"" << Y(s.y[i]) << "\" r=\"2.5\" fill=\"" << color << "\"/>\n";
    }
    if (count > 1)
      svg << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\""
          << (s.dashed ? " stroke-dasharray=\"5,3\"" : "") << " points=\"" << pts.str() << "\"/>\n";
    // legend, top right inside the frame
    const double ly = oy + kTop + 14 + 15 * (double)k, lx = ox + kLeft + pw - 110;
    svg << "<line x1=\"" << lx << "\" y1=\"" << ly - 4 << "\" x2=\"" << lx + 18 << "\" y2=\"" << ly - 4
        << "\" stroke=\"" << color << "\" stroke-width=\"2\"" << (s.dashed ? " stroke-dasharray=\"5,3\"" : "")
        << "/><text x=\"" << lx + 22 << "\" y=\"" << ly << "\" font-size=\"11\">" << escape(s.name) << "</text>\n";
  }
}

}  // namespace

void write_svg(const std::string& path, const std::vector<Chart>& charts, int per_row) {
  WAVSPA_CHECK(per_row >= 1, "write_svg: per_row must be >= 1, got ", per_row);
  const size_t n = std::max<size_t>(1, charts.size());
  const size_t cols = std::min<size_t>(n, (size_t)per_row), rows = (n + cols - 1) / cols;
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth * cols << "\" height=\""
      << kHeight * rows << "\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (size_t i = 0; i < charts.size(); ++i)
    panel(svg, charts[i], kWidth * (double)(i % cols), kHeight * (double)(i / cols));
  svg << "</svg>\n";
  write_file_atomic(path, svg.str(), "write_svg");
}

}  // namespace wavspa::train
