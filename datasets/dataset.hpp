#pragma once
/// In-memory labelled image datasets (uint8 pixels, interleaved channels as OpenCV stores them,
/// channels in RGB order) and the readers for every supported format.
#include <cstdint>
#include <string>
#include <vector>

namespace ventral {

enum class Split { Train, Test };

/// Parses "train" / "test"; InputError otherwise.
Split parse_split(const std::string& name);
std::string split_name(Split split);

struct Dataset {
  std::string name;                 ///< e.g. "fashion-mnist/test"
  int64_t height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;      ///< N × H × W × C
  std::vector<int64_t> labels;      ///< N, each in [0, classes.size())
  std::vector<std::string> classes; ///< class names, index = label

  size_t size() const { return labels.size(); }
  size_t image_bytes() const { return static_cast<size_t>(height * width * channels); }
  const uint8_t* image(size_t i) const { return pixels.data() + i * image_bytes(); }
  uint8_t* image(size_t i) { return pixels.data() + i * image_bytes(); }
  /// Images per class, index = label.
  std::vector<int64_t> class_counts() const;
  /// Keeps only the images at `indices`, in that order.
  Dataset subset(const std::vector<int64_t>& indices) const;
};

/// Options applied while loading (folder images are decoded to these; other formats are
/// converted when they differ). 0 means "as stored".
struct LoadOptions {
  int64_t channels = 0;
  int64_t image_size = 0;
  /// torchvision's Resize(resize) then CenterCrop(center_crop) on every image (0 = off); the
  /// crop is then the image size, and resize needs a crop (images of other aspect ratios would
  /// differ in shape).
  int64_t resize = 0;
  int64_t center_crop = 0;
};

/// Loads a dataset from a SPEC: `fashion-mnist` (the Debian package),
/// `fashion-mnist:DIR`, `mnist:DIR`, `cifar10:DIR`, `folder:DIR`, `synthetic[:N]`.
Dataset load_dataset(const std::string& spec, Split split, const LoadOptions& options = {});

/// Default location of the Debian package dataset-fashion-mnist.
extern const char* const kFashionMnistDir;

// Individual readers (also used by tests).
/// IDX file pair (MNIST format), gzip or raw.
Dataset read_idx(const std::string& images_path, const std::string& labels_path,
                 std::vector<std::string> classes);
/// CIFAR-10 binary batch files (label byte + 3072 bytes of R, G, B planes per record).
Dataset read_cifar10(const std::vector<std::string>& batch_paths, std::vector<std::string> classes);
/// Image folder ROOT/<class>/<file>; classes sorted by name.
Dataset read_image_folder(const std::string& root, const LoadOptions& options);
/// Procedurally generated shapes (10 classes, 28×28 gray); deterministic given the seed.
Dataset make_synthetic(int64_t n, uint64_t seed);

/// Converts channels (1 ↔ 3) and resizes as requested: resize + centre crop (fit_image), or
/// straight to image_size (area / linear interpolation).
Dataset convert(const Dataset& data, const LoadOptions& options);

/// A seeded, stratified split of indices [0, data.size()): `val_fraction` of every class goes
/// to validation. The same (data, fraction, seed) always yields the same split.
struct TrainValSplit {
  std::vector<int64_t> train, val;
};
TrainValSplit split_train_val(const Dataset& data, double val_fraction, uint64_t seed);

/// Per-channel pixel mean and standard deviation in [0, 1] units.
struct ChannelStats {
  std::vector<double> mean, std;
};
ChannelStats channel_stats(const Dataset& data);

}  // namespace ventral
