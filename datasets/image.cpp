#include "datasets/image.hpp"

#include <opencv2/imgproc.hpp>

namespace ventral {

cv::Mat to_bgr(const Dataset& d, const uint8_t* pixels) {
  cv::Mat img(static_cast<int>(d.height), static_cast<int>(d.width), CV_8UC(static_cast<int>(d.channels)),
              const_cast<uint8_t*>(pixels));
  cv::Mat bgr;
  cv::cvtColor(img, bgr, d.channels == 1 ? cv::COLOR_GRAY2BGR : cv::COLOR_RGB2BGR);
  return bgr;
}

}  // namespace ventral
