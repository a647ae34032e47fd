#pragma once
/// Dataset images as OpenCV matrices: drawing and writing image files, and the geometric
/// preprocessing of every loaded image (torchvision's Resize and CenterCrop).
#include <opencv2/core.hpp>

#include "datasets/dataset.hpp"

namespace ventral {

/// A BGR copy (OpenCV's channel order) of one image of `data`'s shape whose pixels (H × W × C,
/// gray or RGB) start at `pixels`.
cv::Mat to_bgr(const Dataset& data, const uint8_t* pixels);

/// PIL's bilinear resampling (Image.resize with Image.BILINEAR, which torchvision's Resize calls
/// on PIL images): a triangle filter whose support widens with the reduction (antialiasing),
/// a horizontal then a vertical pass, each in PIL's fixed-point arithmetic and rounded to 8 bits.
/// 8-bit images of 1 to 4 channels.
cv::Mat resize_like_pil(const cv::Mat& img, int width, int height);
/// torchvision's Resize(shorter): the shorter side becomes `shorter`, the longer
/// int(shorter × long / short), PIL bilinear.
cv::Mat resize_shorter_side(const cv::Mat& img, int shorter);
/// torchvision's CenterCrop(size): the top-left corner at round((side − size) / 2) (half to even,
/// as Python rounds); an image smaller than `size` is first padded with zeros as torchvision does.
cv::Mat center_crop(const cv::Mat& img, int size);
/// Image i before any geometry: a streamed dataset's file decoded at its own resolution (channels
/// converted), or an in-memory dataset's stored image (a view of its pixels). For
/// RandomResizedCrop, which crops before it resizes.
cv::Mat source_image(const Dataset& data, size_t i);
/// One decoded 8-bit image (channels already converted) brought to the dataset's geometry:
/// `options.resize` / `options.center_crop` when set, otherwise `height` × `width` (area
/// interpolation when shrinking, bilinear when enlarging; unchanged when it already fits).
cv::Mat fit_image(const cv::Mat& img, const LoadOptions& options, int64_t height, int64_t width);

}  // namespace ventral
