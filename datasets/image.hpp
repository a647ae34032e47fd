#pragma once
/// Dataset images as OpenCV matrices, for drawing and writing image files.
#include <opencv2/core.hpp>

#include "datasets/dataset.hpp"

namespace ventral {

/// A BGR copy (OpenCV's channel order) of one image of `data`'s shape whose pixels (H × W × C,
/// gray or RGB) start at `pixels`.
cv::Mat to_bgr(const Dataset& data, const uint8_t* pixels);

}  // namespace ventral
