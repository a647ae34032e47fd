#include "eval/plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <zlib.h>

#include "core/error.hpp"
#include "core/io.hpp"
#include "datasets/dataset.hpp"
#include "datasets/image.hpp"
#include "datasets/perturb.hpp"

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

// Series k: a palette colour; past the palette the colours repeat dashed with hollow markers.
struct Style {
  cv::Scalar colour;
  bool dashed;
};
Style style(size_t k) { return {kPalette[k % kPalette.size()], (k / kPalette.size()) % 2 == 1}; }

void segment(cv::Mat& img, cv::Point a, cv::Point b, const Style& st) {
  if (!st.dashed) {
    cv::line(img, a, b, st.colour, 2, cv::LINE_AA);
    return;
  }
  const double len = std::hypot(b.x - a.x, b.y - a.y), on = 7, period = 11;
  for (double t = 0; t < len; t += period) {
    double t1 = std::min(len, t + on);
    cv::Point p(a.x + static_cast<int>((b.x - a.x) * t / len), a.y + static_cast<int>((b.y - a.y) * t / len));
    cv::Point q(a.x + static_cast<int>((b.x - a.x) * t1 / len), a.y + static_cast<int>((b.y - a.y) * t1 / len));
    cv::line(img, p, q, st.colour, 2, cv::LINE_AA);
  }
}

void marker(cv::Mat& img, cv::Point p, const Style& st) {
  if (st.dashed) {
    cv::circle(img, p, 3, cv::Scalar(255, 255, 255), cv::FILLED, cv::LINE_AA);
    cv::circle(img, p, 3, st.colour, 1, cv::LINE_AA);
  } else {
    cv::circle(img, p, 3, st.colour, cv::FILLED, cv::LINE_AA);
  }
}

int text_width(const std::string& s, double scale) {
  int base = 0;
  return cv::getTextSize(s, cv::FONT_HERSHEY_SIMPLEX, scale, 1, &base).width;
}

// One legend entry: a line sample (with its marker) and the name.
void legend_entry(cv::Mat& img, cv::Point at, const std::string& name, const Style& st) {
  segment(img, {at.x, at.y - 4}, {at.x + 22, at.y - 4}, st);
  marker(img, {at.x + 11, at.y - 4}, st);
  text(img, name, {at.x + 26, at.y}, 0.4);
}

}  // namespace

cv::Mat render_chart(const Chart& chart, int width, int height) {
  cv::Mat img(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  const int left = 74, right = 12, top = 34, bottom = 46;
  // The legend column fits the longest name, up to a third of the width (longer names are cut).
  int name_w = 0;
  for (const auto& s : chart.series) name_w = std::max(name_w, text_width(s.name, 0.4));
  const int legend_w = chart.legend && !chart.series.empty() ? std::clamp(name_w + 44, 80, width / 3) : 0;
  int plot_w = width - left - right - legend_w, plot_h = height - top - bottom;
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (const auto& s : chart.series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      xmin = std::min(xmin, s.x[i]), xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]), ymax = std::max(ymax, s.y[i]);
      if (s.lo.size() == s.x.size() && std::isfinite(s.lo[i])) ymin = std::min(ymin, s.lo[i]);
      if (s.hi.size() == s.x.size() && std::isfinite(s.hi[i])) ymax = std::max(ymax, s.hi[i]);
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

  // Bands first, translucent, so every line stays visible on top of them.
  for (size_t k = 0; k < chart.series.size(); ++k) {
    const auto& s = chart.series[k];
    if (s.lo.size() != s.x.size() || s.hi.size() != s.x.size()) continue;
    std::vector<cv::Point> upper, lower;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.lo[i]) || !std::isfinite(s.hi[i])) continue;
      upper.emplace_back(px(s.x[i]), py(s.hi[i]));
      lower.emplace_back(px(s.x[i]), py(s.lo[i]));
    }
    if (upper.size() < 2) continue;
    std::vector<cv::Point> polygon(upper.begin(), upper.end());
    polygon.insert(polygon.end(), lower.rbegin(), lower.rend());
    cv::Mat layer = img.clone();
    cv::fillPoly(layer, std::vector<std::vector<cv::Point>>{polygon}, style(k).colour, cv::LINE_AA);
    cv::addWeighted(layer, 0.18, img, 0.82, 0, img);
  }
  for (size_t k = 0; k < chart.series.size(); ++k) {
    const auto& s = chart.series[k];
    const Style st = style(k);
    cv::Point prev(-1, -1);
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) {
        prev = {-1, -1};
        continue;
      }
      cv::Point p(px(s.x[i]), py(s.y[i]));
      if (prev.x >= 0) segment(img, prev, p, st);
      marker(img, p, st);
      prev = p;
    }
    if (legend_w > 0) {
      std::string name = s.name;
      while (name.size() > 1 && text_width(name, 0.4) > legend_w - 44) name.pop_back();
      legend_entry(img, {left + plot_w + 10, top + 12 + 18 * static_cast<int>(k)}, name, st);
    }
  }
  return img;
}

cv::Mat render_grid(const std::vector<Chart>& panels, const std::string& title, int columns, int pw, int ph) {
  int cols = std::max(1, std::min<int>(columns, static_cast<int>(panels.size())));
  int rows = (static_cast<int>(panels.size()) + cols - 1) / cols;
  const int header = 36;
  // One shared legend when every panel plots the same series (in the same order).
  auto names = [](const Chart& c) {
    std::vector<std::string> n;
    for (const auto& s : c.series) n.push_back(s.name);
    return n;
  };
  const std::vector<std::string> first = panels.empty() ? std::vector<std::string>{} : names(panels.front());
  bool shared = panels.size() > 1 && !first.empty();
  for (const auto& p : panels) shared = shared && names(p) == first;
  const int width = cols * pw;
  int entry_w = 0, per_row = 1, legend_h = 0;
  if (shared) {
    for (const auto& n : first) entry_w = std::max(entry_w, text_width(n, 0.4) + 44);
    entry_w = std::min(entry_w, width);
    per_row = std::max(1, width / entry_w);
    legend_h = 12 + 20 * ((static_cast<int>(first.size()) + per_row - 1) / per_row);
  }
  cv::Mat grid(header + rows * ph + legend_h, width, CV_8UC3, cv::Scalar(255, 255, 255));
  text(grid, title, {grid.cols / 2, 24}, 0.7, 2, true);
  if (shared) {
    const int x0 = (width - per_row * entry_w) / 2, y0 = header + rows * ph + 20;
    for (size_t k = 0; k < first.size(); ++k)
      legend_entry(grid, {x0 + static_cast<int>(k % per_row) * entry_w + 10, y0 + 20 * static_cast<int>(k / per_row)},
                   first[k], style(k));
  }
  for (size_t i = 0; i < panels.size(); ++i) {
    Chart panel = panels[i];
    panel.legend = panel.legend && !shared;
    cv::Mat p = render_chart(panel, pw, ph);
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
        cv::Mat bgr = to_bgr(data, buf.data());
        cv::resize(bgr, bgr, cv::Size(cell - 4, cell - 4), 0, 0, cv::INTER_NEAREST);
        bgr.copyTo(sheet(cv::Rect(label_w + i * cell + 2, y + 2, cell - 4, cell - 4)));
      }
    }
  }
  return sheet;
}

namespace {
// The text chunk every PNG ventral writes carries after its header (PNG's registered keyword
// "Software"), so that a file is replaced only when ventral wrote it.
const std::string kPngSoftware = std::string("Software") + '\0' + "ventral";

uint32_t png_crc(const std::string& bytes) {  // PNG's chunk CRC is zlib's CRC-32
  return static_cast<uint32_t>(::crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

std::string big_endian(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

constexpr size_t kPngHeaderEnd = 8 + 4 + 4 + 13 + 4;  // signature, then the IHDR chunk
}  // namespace

void write_png(const std::string& path, const cv::Mat& image) {
  std::vector<unsigned char> buf;
  if (!cv::imencode(".png", image, buf)) throw InputError(path + ": cannot encode PNG");
  std::string png(buf.begin(), buf.end());
  const std::string body = "tEXt" + kPngSoftware;
  png.insert(kPngHeaderEnd, big_endian(static_cast<uint32_t>(kPngSoftware.size())) + body + big_endian(png_crc(body)));
  write_file_atomic(path, png);
}

bool png_written_by_ventral(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(kPngHeaderEnd + 8 + kPngSoftware.size(), '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  return in && head.compare(kPngHeaderEnd + 4, 4 + kPngSoftware.size(), "tEXt" + kPngSoftware) == 0;
}

}  // namespace ventral
