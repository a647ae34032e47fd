// A small procedurally generated dataset: ten shape classes drawn at random position, size,
// stroke and intensity on a noisy background. Learnable in seconds, so tests and smoke runs
// exercise the full pipeline without any files.
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "core/rng.hpp"
#include "datasets/dataset.hpp"

namespace ventral {

namespace {

const std::vector<std::string> kShapes = {"circle",   "square", "triangle", "cross", "ring",
                                          "hbar",     "vbar",   "diagonal", "diamond", "dots"};

void draw_shape(cv::Mat& img, int64_t cls, Rng& rng) {
  const double side = img.cols;
  cv::Point2d c(side / 2 + rng.uniform(-3, 3), side / 2 + rng.uniform(-3, 3));
  double r = rng.uniform(0.22, 0.36) * side;
  cv::Scalar ink(rng.uniform(170, 255));
  int thick = 1 + static_cast<int>(rng.below(2));
  auto pt = [&](double dx, double dy) { return cv::Point(cvRound(c.x + dx), cvRound(c.y + dy)); };
  switch (cls) {
    case 0: cv::circle(img, pt(0, 0), cvRound(r), ink, cv::FILLED, cv::LINE_AA); break;
    case 1: cv::rectangle(img, pt(-r, -r), pt(r, r), ink, cv::FILLED); break;
    case 2: {
      std::vector<cv::Point> tri = {pt(0, -r), pt(-r, r), pt(r, r)};
      cv::fillConvexPoly(img, tri, ink, cv::LINE_AA);
      break;
    }
    case 3:
      cv::line(img, pt(-r, 0), pt(r, 0), ink, thick + 1, cv::LINE_AA);
      cv::line(img, pt(0, -r), pt(0, r), ink, thick + 1, cv::LINE_AA);
      break;
    case 4: cv::circle(img, pt(0, 0), cvRound(r), ink, thick + 1, cv::LINE_AA); break;
    case 5: cv::rectangle(img, pt(-r, -r / 4), pt(r, r / 4), ink, cv::FILLED); break;
    case 6: cv::rectangle(img, pt(-r / 4, -r), pt(r / 4, r), ink, cv::FILLED); break;
    case 7: cv::line(img, pt(-r, -r), pt(r, r), ink, thick + 2, cv::LINE_AA); break;
    case 8: {
      std::vector<cv::Point> dia = {pt(0, -r), pt(r, 0), pt(0, r), pt(-r, 0)};
      cv::fillConvexPoly(img, dia, ink, cv::LINE_AA);
      break;
    }
    default:
      for (int k = 0; k < 4; ++k) {
        double a = 1.5707963 * k + 0.785398;
        cv::circle(img, pt(r * 0.7 * std::cos(a), r * 0.7 * std::sin(a)), 2 + thick, ink, cv::FILLED);
      }
  }
}

}  // namespace

Dataset make_synthetic(int64_t n, uint64_t seed) {
  Dataset d;
  d.height = d.width = 28;
  d.channels = 1;
  d.classes = kShapes;
  d.pixels.resize(static_cast<size_t>(n) * d.image_bytes());
  for (int64_t i = 0; i < n; ++i) {
    Rng rng({seed, stream::kSynthetic, static_cast<uint64_t>(i)});
    int64_t cls = i % static_cast<int64_t>(kShapes.size());
    cv::Mat img(28, 28, CV_8UC1, d.image(i));
    img.setTo(cv::Scalar(0));
    draw_shape(img, cls, rng);
    for (int p = 0; p < 28 * 28; ++p) {
      double v = img.data[p] + 12.0 * rng.normal();
      img.data[p] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
    }
    d.labels.push_back(cls);
  }
  return d;
}

}  // namespace ventral
