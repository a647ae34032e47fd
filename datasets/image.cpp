#include "datasets/image.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace ventral {

cv::Mat to_bgr(const Dataset& d, const uint8_t* pixels) {
  cv::Mat img(static_cast<int>(d.height), static_cast<int>(d.width), CV_8UC(static_cast<int>(d.channels)),
              const_cast<uint8_t*>(pixels));
  cv::Mat bgr;
  cv::cvtColor(img, bgr, d.channels == 1 ? cv::COLOR_GRAY2BGR : cv::COLOR_RGB2BGR);
  return bgr;
}

namespace {

// Pillow 9's Resample.c, for the bilinear filter: coefficients per output pixel, normalised,
// then in fixed point with PRECISION_BITS = 32 − 8 − 2.
constexpr int kPrecisionBits = 32 - 8 - 2;

struct Coefficients {
  int taps = 0;                 ///< coefficients per output pixel (the widest window)
  std::vector<int> first, count;///< per output pixel: first input index and window length
  std::vector<int32_t> k;       ///< out × taps, fixed point
};

Coefficients coefficients(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;  // the bilinear (triangle) filter's support is 1
  Coefficients c;
  c.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.k.assign(static_cast<size_t>(out_size) * c.taps, 0);
  std::vector<double> w(c.taps);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0;
    for (int x = 0; x < xmax; ++x) {
      const double t = std::fabs((x + xmin - center + 0.5) * ss);
      w[x] = t < 1 ? 1 - t : 0;
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0 ? w[x] / ww : w[x];
      c.k[static_cast<size_t>(xx) * c.taps + x] =
          static_cast<int32_t>(v * (1 << kPrecisionBits) + (v < 0 ? -0.5 : 0.5));
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

uint8_t clip8(int32_t ss) {
  const int32_t v = ss >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// One pass along x (horizontal) or y (vertical) of an 8-bit image with `ch` interleaved channels.
cv::Mat resample_pass(const cv::Mat& in, int out_size, bool horizontal) {
  const int ch = in.channels();
  const int in_size = horizontal ? in.cols : in.rows;
  const Coefficients c = coefficients(in_size, out_size);
  cv::Mat out(horizontal ? in.rows : out_size, horizontal ? out_size : in.cols, in.type());
  for (int y = 0; y < out.rows; ++y) {
    uint8_t* dst = out.ptr<uint8_t>(y);
    for (int x = 0; x < out.cols; ++x) {
      const int o = horizontal ? x : y;
      const int32_t* k = &c.k[static_cast<size_t>(o) * c.taps];
      for (int b = 0; b < ch; ++b) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int i = 0; i < c.count[o]; ++i) {
          const int src = c.first[o] + i;
          const uint8_t v = horizontal ? in.ptr<uint8_t>(y)[src * ch + b] : in.ptr<uint8_t>(src)[x * ch + b];
          ss += v * k[i];
        }
        dst[x * ch + b] = clip8(ss);
      }
    }
  }
  return out;
}

}  // namespace

cv::Mat resize_like_pil(const cv::Mat& img, int width, int height) {
  CV_Assert(img.depth() == CV_8U && width > 0 && height > 0);
  cv::Mat out = img;
  if (width != out.cols) out = resample_pass(out, width, /*horizontal=*/true);
  if (height != out.rows) out = resample_pass(out, height, /*horizontal=*/false);
  return out.data == img.data ? img.clone() : out;
}

cv::Mat resize_shorter_side(const cv::Mat& img, int shorter) {
  const bool wide = img.cols >= img.rows;
  const int short_side = wide ? img.rows : img.cols, long_side = wide ? img.cols : img.rows;
  const int new_long = static_cast<int>(static_cast<double>(shorter) * long_side / short_side);
  return wide ? resize_like_pil(img, new_long, shorter) : resize_like_pil(img, shorter, new_long);
}

cv::Mat center_crop(const cv::Mat& img, int size) {
  cv::Mat src = img;
  if (src.cols < size || src.rows < size) {
    const int pad_w = std::max(0, size - src.cols), pad_h = std::max(0, size - src.rows);
    cv::copyMakeBorder(src, src, pad_h / 2, (pad_h + 1) / 2, pad_w / 2, (pad_w + 1) / 2, cv::BORDER_CONSTANT,
                       cv::Scalar::all(0));
  }
  // Python's round(): half to even, which std::nearbyint does in the default rounding mode.
  const int top = static_cast<int>(std::nearbyint((src.rows - size) / 2.0));
  const int left = static_cast<int>(std::nearbyint((src.cols - size) / 2.0));
  return src(cv::Rect(left, top, size, size)).clone();
}

cv::Mat fit_image(const cv::Mat& img, const LoadOptions& o, int64_t height, int64_t width) {
  if (o.resize > 0 || o.center_crop > 0) {
    cv::Mat r = o.resize > 0 ? resize_shorter_side(img, static_cast<int>(o.resize)) : img;
    return o.center_crop > 0 ? center_crop(r, static_cast<int>(o.center_crop)) : r;
  }
  if (img.rows == height && img.cols == width) return img;
  cv::Mat out;
  cv::resize(img, out, cv::Size(static_cast<int>(width), static_cast<int>(height)), 0, 0,
             img.rows > height ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

}  // namespace ventral
