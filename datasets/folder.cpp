// Image folders: ROOT/<class>/<file>, decoded with OpenCV. Classes are the sub-folders sorted
// by name; every image is converted to the requested channels (RGB order) and geometry: resize
// + centre crop (data.resize / data.center_crop, torchvision's), or straight to data.image_size
// (by default the first image's size), so a folder of mixed sizes still yields one tensor shape.
#include <algorithm>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>

#include "core/error.hpp"
#include "core/io.hpp"
#include "datasets/dataset.hpp"
#include "datasets/image.hpp"

namespace ventral {

namespace fs = std::filesystem;

namespace {

// The formats ventral decodes, recognised by their leading bytes exactly as OpenCV's own
// decoders recognise them, so the decoder OpenCV then picks is the one named here. Anything else
// is refused before OpenCV sees it: Debian's OpenCV also carries decoders (DICOM through GDCM,
// among others) that abort the process on malformed input instead of failing (found by fuzzing:
// tests/fuzz/corpus/image/regression_gdcm_abort).
const char* image_format(const std::vector<unsigned char>& b) {
  auto starts = [&](std::initializer_list<unsigned char> sig) {
    return b.size() >= sig.size() && std::equal(sig.begin(), sig.end(), b.begin());
  };
  if (starts({0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'})) return "PNG";
  if (starts({0xff, 0xd8, 0xff})) return "JPEG";
  if (starts({'B', 'M'})) return "BMP";
  if (b.size() >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6' && std::isspace(b[2])) return "PNM";
  if (starts({'I', 'I', 0x2a, 0x00}) || starts({'M', 'M', 0x00, 0x2a})) return "TIFF";
  if (b.size() >= 12 && starts({'R', 'I', 'F', 'F'}) && std::equal(b.begin() + 8, b.begin() + 12, "WEBP")) return "WebP";
  return nullptr;
}

// libpng and friends print their own complaints on stderr before OpenCV returns an empty
// image; the user gets our one-line error instead, so silence them while decoding.
cv::Mat decode_quietly(const std::string& path) {
  std::vector<unsigned char> bytes = read_file(path);
  if (!image_format(bytes))
    throw InputError(path + ": cannot decode image (not a PNG, JPEG, BMP, PNM, TIFF or WebP file: unrecognised header)");
  std::fflush(stderr);
  int saved = dup(STDERR_FILENO);
  int null_fd = open("/dev/null", O_WRONLY);
  if (saved >= 0 && null_fd >= 0) dup2(null_fd, STDERR_FILENO);
  cv::Mat img;
  try {
    img = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception&) {
    img = cv::Mat();
  }
  std::fflush(stderr);
  if (saved >= 0) dup2(saved, STDERR_FILENO), close(saved);
  if (null_fd >= 0) close(null_fd);
  return img;
}

bool hidden(const fs::path& p) { return p.filename().string().rfind('.', 0) == 0; }

// Converts a decoded image (any depth/channels) to 8-bit with `channels` channels (RGB order).
cv::Mat to_channels(const cv::Mat& in, int channels) {
  cv::Mat img = in;
  if (img.depth() != CV_8U) {
    double scale = img.depth() == CV_16U ? 1.0 / 257.0 : 1.0;
    img.convertTo(img, CV_8U, scale);
  }
  cv::Mat out;
  int have = img.channels();
  if (channels == 1) {
    if (have == 1) out = img;
    else if (have == 3) cv::cvtColor(img, out, cv::COLOR_BGR2GRAY);
    else cv::cvtColor(img, out, cv::COLOR_BGRA2GRAY);
  } else {
    if (have == 1) cv::cvtColor(img, out, cv::COLOR_GRAY2RGB);
    else if (have == 3) cv::cvtColor(img, out, cv::COLOR_BGR2RGB);
    else cv::cvtColor(img, out, cv::COLOR_BGRA2RGB);
  }
  return out;
}

}  // namespace

Dataset read_image_folder(const std::string& root, const LoadOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw InputError(root + ": no such folder");
  std::vector<fs::path> class_dirs;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && !hidden(e.path())) class_dirs.push_back(e.path());
  std::sort(class_dirs.begin(), class_dirs.end());
  if (class_dirs.empty())
    throw InputError(root + ": empty image folder (expected ROOT/<class>/<image> sub-folders)");

  Dataset d;
  size_t resized = 0;  // images of another size than the first, without a size asked for
  for (size_t c = 0; c < class_dirs.size(); ++c) {
    d.classes.push_back(class_dirs[c].filename().string());
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(class_dirs[c]))
      if (e.is_regular_file() && !hidden(e.path())) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      cv::Mat img = decode_quietly(f.string());
      if (img.empty())
        throw InputError(f.string() + ": cannot decode image (corrupt or not an image file)");
      if (d.channels == 0) {
        d.channels = options.channels ? options.channels : (img.channels() == 1 ? 1 : 3);
        const int64_t side = options.center_crop ? options.center_crop : options.image_size;
        d.height = side ? side : img.rows;
        d.width = side ? side : img.cols;
      }
      if (img.rows != d.height || img.cols != d.width) ++resized;
      cv::Mat conv = fit_image(to_channels(img, static_cast<int>(d.channels)), options, d.height, d.width);
      if (!conv.isContinuous()) conv = conv.clone();
      d.pixels.insert(d.pixels.end(), conv.data, conv.data + conv.total() * conv.elemSize());
      d.labels.push_back(static_cast<int64_t>(c));
    }
  }
  if (d.labels.empty())
    throw InputError(root + ": empty image folder (the class sub-folders hold no files)");
  if (resized > 0 && options.image_size == 0 && options.center_crop == 0)
    std::fprintf(stderr, "note: %s: %zu of %zu images differ in size from the first (%lldx%lld) and were resized to it; "
                 "set data.image_size, or data.resize and data.center_crop\n",
                 root.c_str(), resized, d.labels.size(), (long long)d.width, (long long)d.height);
  return d;
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
