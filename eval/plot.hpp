#pragma once
/// Line charts rendered with OpenCV: titled, labelled axes, legends, small multiples.
#include <opencv2/core.hpp>
#include <string>
#include <vector>

namespace ventral {

struct Series {
  std::string name;
  std::vector<double> x, y;
  /// Optional band around the line (e.g. mean ± sd over seeds): as long as x, or empty.
  std::vector<double> lo, hi;
};

struct Chart {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  double ymin = NAN, ymax = NAN;  ///< NaN: from the data
  bool legend = true;             ///< false: no legend column (render_grid draws one shared legend)
};

/// Renders one chart into a width × height image (white background).
cv::Mat render_chart(const Chart& chart, int width = 640, int height = 420);
/// Renders charts as a grid of panels (small multiples) under a common title. When every panel
/// has the same series, one legend strip below the grid names them (full names, not per panel).
/// Series past the 8 palette colours repeat them dashed with hollow markers.
cv::Mat render_grid(const std::vector<Chart>& panels, const std::string& title, int columns = 4,
                    int panel_width = 420, int panel_height = 300);
struct Dataset;
struct PerturbationSpec;
/// A contact sheet: rows family × severity (0 first), columns the first `n` images of `data`.
cv::Mat render_contact_sheet(const Dataset& data, const std::vector<PerturbationSpec>& specs, int n, uint64_t seed);

/// Writes a PNG atomically, marked as ventral's (a tEXt chunk "Software: ventral"); InputError
/// naming the path on failure.
void write_png(const std::string& path, const cv::Mat& image);
/// Whether `path` is a PNG write_png wrote (one that may be replaced).
bool png_written_by_ventral(const std::string& path);

}  // namespace ventral
