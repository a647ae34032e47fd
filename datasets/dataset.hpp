#pragma once
/// Labelled image datasets (uint8 pixels, interleaved channels as OpenCV stores them, channels
/// in RGB order) and the readers for every supported format. A dataset holds its pixels in
/// memory, or (image folders and file lists too large for memory) streams them: it holds the
/// file paths and decodes an image when it is fetched.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace ventral {

/// A file of a streamed dataset that does not decode, with data.skip_bad_images on (warned
/// about once): the loader puts another image of the same class in its place.
class UndecodableImage : public InputError {
 public:
  using InputError::InputError;
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
  /// Image folders and lists: "auto" streams when the decoded split would exceed
  /// kInMemoryBytes, "on" always streams, "off" always decodes into memory.
  std::string stream = "auto";
  /// A file that does not decode is skipped and counted instead of being an error.
  bool skip_bad_images = false;
  /// Where image_size came from when the caller chose it, not the user (`eval --data`: "the
  /// model's input"): images of another size are then resized with a note naming it.
  std::string size_from;
};

/// The decoded size above which data.stream=auto streams an image folder or list: 1 GiB.
constexpr size_t kInMemoryBytes = size_t{1} << 30;

/// The image files of a streamed dataset: paths (relative to `root` unless absolute), decoded,
/// converted to the dataset's channels and brought to its geometry (`options`) when fetched.
class ImageFiles {
 public:
  std::string root;
  LoadOptions options;
  size_t size() const { return offsets_.size() - 1; }
  void add(const std::string& path);
  /// The path as written in the folder or list (relative to root unless absolute).
  std::string name(size_t k) const;
  /// The path to open.
  std::string path(size_t k) const;
  /// Files found not to decode so far and skipped (data.skip_bad_images).
  size_t skipped() const;
  /// Records file k as skipped; true the first time (when it is worth a warning).
  bool mark_skipped(int64_t k) const;
  /// True the first time a streamed image is found to differ in size (worth one note).
  bool first_resize() const { return !resize_noted_.exchange(true); }
  /// True the first time a streamed image is found to be stored with other channels (colour in
  /// a gray dataset, or gray in a colour one) and converted.
  bool first_recolour() const { return !recolour_noted_.exchange(true); }

 private:
  mutable std::atomic<bool> resize_noted_{false}, recolour_noted_{false};
  std::vector<char> text_;
  std::vector<uint64_t> offsets_{0};
  mutable std::mutex mutex_;
  mutable std::set<int64_t> skipped_;
};

enum class Split { Train, Test };

/// A class name with case, spaces and punctuation ignored ("T-shirt-top", a folder name, is
/// "tshirttop" like "T-shirt/top"): how evaluation matches a dataset's classes to a model's.
std::string class_key(const std::string& name);

/// Parses "train" / "test"; InputError otherwise.
Split parse_split(const std::string& name);
std::string split_name(Split split);

struct Dataset {
  std::string name;                 ///< e.g. "fashion-mnist/test"
  int64_t height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;      ///< N × H × W × C
  std::vector<int64_t> labels;      ///< N, each in [0, classes.size())
  std::vector<std::string> classes; ///< class names, index = label
  /// Streamed datasets only (pixels stays empty): image i is file ids[i] of `files`.
  std::shared_ptr<const ImageFiles> files;
  std::vector<int64_t> ids;
  /// How the images are held, for run headers: "in memory" or "streamed from N files (why)".
  std::string storage = "in memory";
  /// When this dataset is the first size() images of a larger one (`eval --limit N`): that one,
  /// from which debris cuts its fragments, so that an image is perturbed as it is in the full set.
  std::shared_ptr<const Dataset> pool;

  size_t size() const { return labels.size(); }
  size_t image_bytes() const { return static_cast<size_t>(height * width * channels); }
  bool streamed() const { return files != nullptr; }
  /// In-memory datasets only.
  const uint8_t* image(size_t i) const { return pixels.data() + i * image_bytes(); }
  uint8_t* image(size_t i) { return pixels.data() + i * image_bytes(); }
  /// Image i at the dataset's geometry, held or streamed: a pointer into `pixels`, or the file
  /// decoded into `scratch` (which the pointer then points into). Thread-safe. InputError naming
  /// the file when it does not decode (UndecodableImage with data.skip_bad_images, the file
  /// counted in files->skipped()).
  const uint8_t* fetch(size_t i, std::vector<uint8_t>& scratch) const;
  /// Images per class, index = label.
  std::vector<int64_t> class_counts() const;
  /// Keeps only the images at `indices`, in that order.
  Dataset subset(const std::vector<int64_t>& indices) const;
};

/// Checks a data.dataset value without reading images: a known kind, the folder or file it
/// needs, a valid synthetic:N count; InputError otherwise.
void check_dataset_spec(const std::string& spec);
/// The SPEC with its folder or file made absolute against the working directory and canonical
/// (`folder:imgs/` run in /home/a gives `folder:/home/a/imgs`; links resolved); other specs
/// unchanged. A run records its dataset this way, so evaluating or resuming it from another
/// directory reads the same images, never another folder of the same name.
std::string absolute_dataset_spec(const std::string& spec);
/// Loads a dataset from a SPEC: `fashion-mnist` (the Debian package), `fashion-mnist:DIR`,
/// `mnist:DIR`, `cifar10:DIR`, `folder:DIR`, `list:FILE`, `synthetic[:N]`. Folders and lists
/// are indexed first (datasets/files.cpp, cached) and then streamed or decoded into memory as
/// options.stream says.
Dataset load_dataset(const std::string& spec, Split split, const LoadOptions& options = {});

/// Default location of the Debian package dataset-fashion-mnist.
extern const char* const kFashionMnistDir;

// Individual readers (also used by tests).
/// IDX file pair (MNIST format), gzip or raw.
Dataset read_idx(const std::string& images_path, const std::string& labels_path,
                 std::vector<std::string> classes);
/// CIFAR-10 binary batch files (label byte + 3072 bytes of R, G, B planes per record).
Dataset read_cifar10(const std::vector<std::string>& batch_paths, std::vector<std::string> classes);
/// Image folder ROOT/<class>/<file>; classes sorted by name; decoded into memory.
Dataset read_image_folder(const std::string& root, const LoadOptions& options);

/// What indexing a folder or list finds: every image's path and label, and the class names; no
/// pixels.
struct ImageIndex {
  std::shared_ptr<ImageFiles> files;
  std::vector<int64_t> labels;
  std::vector<std::string> classes;
  /// A folder's entries that are not images of a class: sub-folders inside class folders (not
  /// read), and entries that are not regular files (dangling links, pipes, devices).
  size_t nested_folders = 0, not_files = 0;
};
/// ROOT/<class>/<file>, classes sorted by name, files sorted within a class. The index is cached
/// in ROOT/.ventral-index (or, where ROOT is read-only, under $XDG_CACHE_HOME/ventral), keyed by
/// the names and modification times of ROOT's class folders (a folder's time changes whenever a
/// file in it is added, removed or renamed); it is rebuilt when they differ.
ImageIndex index_folder(const std::string& root);
/// A test split's index (ROOT/test) relabelled with the training split's classes (the class
/// folders of ROOT/train, sorted): a test folder lacking a class keeps every other class's label;
/// InputError for a test class folder the training split does not have.
void use_training_classes(ImageIndex& index, const std::string& root, const std::string& training_root);
/// A CSV list of `path,label` lines (see README "Datasets"): paths relative to the list's
/// folder, labels class names or label numbers; `classes_from` is the list (or classes.txt)
/// that fixes the class names and their order (empty: this list). Cached like folders, keyed by
/// the list's size and modification time. InputError naming the file and line for a missing
/// image, a duplicate path, an unknown class or a malformed line.
ImageIndex index_list(const std::string& list, const std::string& classes_from);
/// A dataset of indexed images at the geometry `options` asks for (from the first image that
/// decodes where it asks none): streamed, or decoded into memory, as options.stream decides.
Dataset open_images(ImageIndex index, const LoadOptions& options, const std::string& what);
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
/// Streamed datasets: measured on a sample of kStatsSample images evenly spaced through the
/// dataset (`sampled` says how many; 0 = every image).
struct ChannelStats {
  std::vector<double> mean, std;
  size_t sampled = 0;
};
constexpr size_t kStatsSample = 2000;
ChannelStats channel_stats(const Dataset& data);

}  // namespace ventral
