#include "eval/plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/error.hpp"
#include "core/io.hpp"
#include "datasets/dataset.hpp"
#include "eval/perturb.hpp"

namespace ventral {

namespace {

// A colour-blind-friendly palette (Okabe–Ito), BGR.
const std::vector<cv::Scalar> kPalette = {{0, 0, 0},     {0, 159, 230}, {233, 180, 86}, {115, 158, 0},
                                          {66, 228, 240}, {178, 114, 0}, {0, 94, 213},   {167, 121, 204}};

std::string tick(double v) {
  char buf[32];
  if (std::abs(v) >= 100 || v == std::round(v)) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

void text(cv::Mat& img, const std::string& s, cv::Point at, double scale, int thickness = 1, bool centre = false) {
  int base = 0;
  cv::Size sz = cv::getTextSize(s, cv::FONT_HERSHEY_SIMPLEX, scale, thickness, &base);
  if (centre) at.x -= sz.width / 2;
  cv::putText(img, s, at, cv::FONT_HERSHEY_SIMPLEX, scale, cv::Scalar(0, 0, 0), thickness, cv::LINE_AA);
}

}  // namespace

cv::Mat render_chart(const Chart& chart, int width, int height) {
  cv::Mat img(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  const int left = 74, right = 12, top = 34, bottom = 46;
  int legend_rows = static_cast<int>(chart.series.size());
  int plot_w = width - left - right - 120, plot_h = height - top - bottom;
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (const auto& s : chart.series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      xmin = std::min(xmin, s.x[i]), xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]), ymax = std::max(ymax, s.y[i]);
    }
  if (!std::isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  if (std::isfinite(chart.ymin)) ymin = chart.ymin;
  if (std::isfinite(chart.ymax)) ymax = chart.ymax;
  if (xmax == xmin) xmin -= 0.5, xmax += 0.5;
  if (ymax == ymin) ymin -= 0.05, ymax += 0.05;
  double pad = (ymax - ymin) * 0.05;
  ymin -= pad, ymax += pad;
  auto px = [&](double x) { return left + static_cast<int>((x - xmin) / (xmax - xmin) * plot_w); };
  auto py = [&](double y) { return top + plot_h - static_cast<int>((y - ymin) / (ymax - ymin) * plot_h); };

  text(img, chart.title, {left + plot_w / 2, 22}, 0.55, 1, true);
  cv::rectangle(img, {left, top}, {left + plot_w, top + plot_h}, cv::Scalar(0, 0, 0), 1);
  // y ticks and grid at round values: a step of 1, 2 or 5 × 10^k giving 3–6 ticks, labelled
  // with just the decimals that step needs (no two labels alike).
  const double raw = (ymax - ymin) / 4, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = (raw / mag < 1.5 ? 1 : raw / mag < 3 ? 2 : raw / mag < 7 ? 5 : 10) * mag;
  const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  for (double y = std::ceil(ymin / step - 1e-9) * step; y <= ymax + 1e-12; y += step) {
    char label[32];
    std::snprintf(label, sizeof label, "%.*f", decimals, std::abs(y) < step / 2 ? 0.0 : y);
    cv::line(img, {left, py(y)}, {left + plot_w, py(y)}, cv::Scalar(225, 225, 225), 1);
    text(img, label, {24, py(y) + 4}, 0.4);
  }
  std::vector<double> xs;
  for (const auto& s : chart.series) xs.insert(xs.end(), s.x.begin(), s.x.end());
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  size_t stride = std::max<size_t>(1, xs.size() / 10);
  for (size_t i = 0; i < xs.size(); i += stride) text(img, tick(xs[i]), {px(xs[i]), top + plot_h + 16}, 0.4, 1, true);
  text(img, chart.xlabel, {left + plot_w / 2, height - 8}, 0.45, 1, true);
  // Vertical y label: draw horizontally into a strip and rotate it.
  cv::Mat label(18, plot_h, CV_8UC3, cv::Scalar(255, 255, 255));
  text(label, chart.ylabel, {plot_h / 2, 13}, 0.45, 1, true);
  cv::rotate(label, label, cv::ROTATE_90_COUNTERCLOCKWISE);
  label.copyTo(img(cv::Rect(2, top, 18, plot_h)));  // left of the tick labels

  for (size_t k = 0; k < chart.series.size(); ++k) {
    const auto& s = chart.series[k];
    cv::Scalar colour = kPalette[k % kPalette.size()];
    cv::Point prev(-1, -1);
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) {
        prev = {-1, -1};
        continue;
      }
      cv::Point p(px(s.x[i]), py(s.y[i]));
      if (prev.x >= 0) cv::line(img, prev, p, colour, 2, cv::LINE_AA);
      cv::circle(img, p, 3, colour, cv::FILLED, cv::LINE_AA);
      prev = p;
    }
    int ly = top + 12 + 18 * static_cast<int>(k);
    if (k < static_cast<size_t>(legend_rows)) {
      cv::line(img, {left + plot_w + 10, ly - 4}, {left + plot_w + 30, ly - 4}, colour, 2, cv::LINE_AA);
      text(img, s.name.substr(0, 14), {left + plot_w + 34, ly}, 0.4);
    }
  }
  return img;
}

cv::Mat render_grid(const std::vector<Chart>& panels, const std::string& title, int columns, int pw, int ph) {
  int cols = std::max(1, std::min<int>(columns, static_cast<int>(panels.size())));
  int rows = (static_cast<int>(panels.size()) + cols - 1) / cols;
  const int header = 36;
  cv::Mat grid(header + rows * ph, cols * pw, CV_8UC3, cv::Scalar(255, 255, 255));
  text(grid, title, {grid.cols / 2, 24}, 0.7, 2, true);
  for (size_t i = 0; i < panels.size(); ++i) {
    cv::Mat p = render_chart(panels[i], pw, ph);
    p.copyTo(grid(cv::Rect(static_cast<int>(i % cols) * pw, header + static_cast<int>(i / cols) * ph, pw, ph)));
  }
  return grid;
}

cv::Mat render_contact_sheet(const Dataset& data, const std::vector<PerturbationSpec>& specs, int n, uint64_t seed) {
  const int scale = data.height <= 32 ? 3 : 1, label_w = 190;
  const int cell = static_cast<int>(data.height) * scale + 4;
  n = std::min<int>(n, static_cast<int>(data.size()));
  int rows = 0;
  for (const auto& s : specs) rows += 1 + static_cast<int>(s.severities.size());
  cv::Mat sheet(40 + rows * cell, label_w + n * cell, CV_8UC3, cv::Scalar(255, 255, 255));
  text(sheet, data.name + ": family, severity (parameter)", {8, 26}, 0.5);
  std::vector<uint8_t> buf(data.image_bytes());
  int row = 0;
  for (const auto& s : specs) {
    std::vector<int> sevs = {0};
    sevs.insert(sevs.end(), s.severities.begin(), s.severities.end());
    for (int sev : sevs) {
      int y = 40 + row++ * cell;
      std::string label = s.family + " " + std::to_string(sev);
      if (sev > 0) label += " (" + tick(perturbation_parameter(s.family, sev, data.channels >= 3)) + ")";
      text(sheet, label, {6, y + cell / 2 + 5}, 0.45);
      for (int i = 0; i < n; ++i) {
        perturb_image(data, i, s.family, sev, seed, buf.data());
        cv::Mat img(static_cast<int>(data.height), static_cast<int>(data.width), CV_8UC(static_cast<int>(data.channels)),
                    buf.data());
        cv::Mat bgr;
        cv::cvtColor(img, bgr, data.channels == 1 ? cv::COLOR_GRAY2BGR : cv::COLOR_RGB2BGR);
        cv::resize(bgr, bgr, cv::Size(cell - 4, cell - 4), 0, 0, cv::INTER_NEAREST);
        bgr.copyTo(sheet(cv::Rect(label_w + i * cell + 2, y + 2, cell - 4, cell - 4)));
      }
    }
  }
  return sheet;
}

void write_png(const std::string& path, const cv::Mat& image) {
  std::vector<unsigned char> buf;
  if (!cv::imencode(".png", image, buf)) throw InputError(path + ": cannot encode PNG");
  write_file_atomic(path, std::string(buf.begin(), buf.end()));
}

}  // namespace ventral
