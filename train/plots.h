// Line charts as SVG files: training curves and learned wavelet filters. SVG keeps the text
// sharp, opens in any browser and needs no library.
//
//   train::Chart chart{"loss", "step", "cross-entropy"};
//   chart.series.push_back({"train", steps, losses});
//   chart.series.push_back({"val", eval_steps, val_losses, /*markers=*/true});
//   train::write_svg("runs/x/loss.svg", {chart});        // one panel
//   train::write_svg("runs/x/filters.svg", panels, 3);   // a grid, three panels per row
#pragma once

#include <string>
#include <vector>

namespace wavspa::train {

struct Series {
  std::string name;
  std::vector<double> x, y;
  bool markers = false;  // dots at the points (sparse series such as validation passes)
  bool dashed = false;
  std::string color = {};  // "" = the next colour of the palette
};

struct Chart {
  std::string title, xlabel, ylabel;
  // `= {}` here and on Series::color: an initializer that stops before the last members,
  // {"loss", "step", "cross-entropy"}, then leaves them empty without a -Wextra warning.
  std::vector<Series> series = {};
};

// Written atomically. Non-finite points are left out; an empty chart draws its frame only.
void write_svg(const std::string& path, const std::vector<Chart>& charts, int per_row = 1);

}  // namespace wavspa::train
