// Image folders decoded into memory, and the conversion of a loaded dataset's channels and
// geometry. Every folder image is converted to the requested channels (RGB order) and geometry:
// resize + centre crop (data.resize / data.center_crop, torchvision's), or straight to
// data.image_size (by default the first image's size), so a folder of mixed sizes still yields
// one tensor shape (datasets/files.cpp).
#include <opencv2/imgproc.hpp>

#include "core/error.hpp"
#include "datasets/dataset.hpp"
#include "datasets/image.hpp"

namespace ventral {

Dataset read_image_folder(const std::string& root, const LoadOptions& options) {
  LoadOptions in_memory = options;
  in_memory.stream = "off";
  return open_images(index_folder(root), in_memory, root);
}

Dataset convert(const Dataset& data, const LoadOptions& options) {
  int64_t channels = options.channels ? options.channels : data.channels;
  const int64_t side = options.center_crop ? options.center_crop : options.image_size;
  int64_t size_h = side ? side : data.height;
  int64_t size_w = side ? side : data.width;
  const bool resampled = options.resize > 0 || options.center_crop > 0;  // even where the size stays
  if (channels == data.channels && size_h == data.height && size_w == data.width && !resampled) return data;
  require(channels == 1 || channels == 3,
          "data.channels: " + std::to_string(channels) + " is not supported (use 1 or 3)");
  Dataset out;
  out.name = data.name;
  out.classes = data.classes;
  out.labels = data.labels;
  out.channels = channels;
  out.height = size_h;
  out.width = size_w;
  out.pixels.resize(out.size() * out.image_bytes());
  int in_type = CV_8UC(static_cast<int>(data.channels));
  for (size_t i = 0; i < data.size(); ++i) {
    cv::Mat src(static_cast<int>(data.height), static_cast<int>(data.width), in_type,
                const_cast<uint8_t*>(data.image(i)));
    cv::Mat conv;
    if (channels == data.channels) conv = src;
    else if (channels == 1) cv::cvtColor(src, conv, cv::COLOR_RGB2GRAY);
    else cv::cvtColor(src, conv, cv::COLOR_GRAY2RGB);
    cv::Mat dst(static_cast<int>(size_h), static_cast<int>(size_w), CV_8UC(static_cast<int>(channels)),
                out.image(i));
    fit_image(conv, options, size_h, size_w).copyTo(dst);
  }
  return out;
}

}  // namespace ventral
