#include "datasets/dataset.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.hpp"
#include "core/io.hpp"
#include "core/rng.hpp"
#include "core/text.hpp"

namespace ventral {

namespace fs = std::filesystem;

const char* const kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

namespace {

const std::vector<std::string> kFashionClasses = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                  "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                                  "Bag",         "Ankle boot"};
const std::vector<std::string> kDigits = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
const std::vector<std::string> kCifarClasses = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                "dog",      "frog",       "horse", "ship", "truck"};

// Finds "<stem>" or "<stem>.gz" in dir; the uncompressed file when both exist (`gunzip -k`
// leaves both), said in a note since the two could differ.
std::string find_idx(const std::string& dir, const std::string& stem) {
  const fs::path raw = fs::path(dir) / stem, gz = fs::path(dir) / (stem + ".gz");
  std::error_code ec;
  const bool has_raw = fs::exists(raw, ec), has_gz = fs::exists(gz, ec);
  if (has_raw && has_gz)
    std::fprintf(stderr, "note: %s: both %s and %s.gz exist; reading %s\n", printable(dir).c_str(), stem.c_str(),
                 stem.c_str(), stem.c_str());
  if (has_raw) return raw.string();
  if (has_gz) return gz.string();
  throw InputError(dir + ": missing " + stem + "[.gz] (expected MNIST-format IDX files)");
}

Dataset load_idx_dir(const std::string& dir, Split split, const std::vector<std::string>& classes) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InputError(dir + ": no such folder");
  std::string prefix = split == Split::Train ? "train" : "t10k";
  std::string images = find_idx(dir, prefix + "-images-idx3-ubyte");
  std::string labels = find_idx(dir, prefix + "-labels-idx1-ubyte");
  return read_idx(images, labels, classes);
}

Dataset load_cifar_dir(const std::string& dir, Split split) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InputError(dir + ": no such folder");
  std::vector<std::string> paths;
  if (split == Split::Train)
    for (int i = 1; i <= 5; ++i) paths.push_back((fs::path(dir) / ("data_batch_" + std::to_string(i) + ".bin")).string());
  else
    paths.push_back((fs::path(dir) / "test_batch.bin").string());
  for (const std::string& path : paths)
    if (!fs::exists(path, ec) && fs::exists(path + ".gz", ec))
      throw InputError(printable(path) + ".gz: CIFAR-10 batches are read unpacked; run gunzip on it (IDX files may "
                       "stay gzipped)");
  std::vector<std::string> classes = kCifarClasses;
  // batches.meta.txt (optional) names the 10 classes, one a line, as the CIFAR-10 binary
  // release ships it; present, it must be exactly that.
  const fs::path meta_path = fs::path(dir) / "batches.meta.txt";
  if (fs::exists(meta_path, ec)) {
    const std::vector<unsigned char> bytes = read_file(meta_path.string());
    std::vector<std::string> names;
    std::istringstream meta(std::string(bytes.begin(), bytes.end()));
    for (std::string line; std::getline(meta, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF
      if (line.empty()) continue;
      if (std::find(names.begin(), names.end(), line) != names.end())
        throw InputError(meta_path.string() + ": class '" + printable(line) + "' is named twice");
      if (printable(line) != line)
        throw InputError(meta_path.string() + ": line " + std::to_string(names.size() + 1) +
                         " holds control characters; the file names the 10 classes, one a line");
      names.push_back(line);
    }
    if (names.size() != 10)
      throw InputError(meta_path.string() + ": names " + std::to_string(names.size()) +
                       " classes; CIFAR-10 has 10 (one a line), or remove the file for the standard names");
    classes = names;
  }
  return read_cifar10(paths, classes);
}

}  // namespace

Split parse_split(const std::string& name) {
  if (name == "train") return Split::Train;
  if (name == "test") return Split::Test;
  throw InputError("unknown split '" + name + "' (use train or test)");
}

std::string split_name(Split split) { return split == Split::Train ? "train" : "test"; }

std::vector<int64_t> Dataset::class_counts() const {
  std::vector<int64_t> counts(classes.size(), 0);
  for (int64_t l : labels) ++counts[l];
  return counts;
}

Dataset Dataset::subset(const std::vector<int64_t>& indices) const {
  Dataset out;
  out.name = name;
  out.height = height;
  out.width = width;
  out.channels = channels;
  out.classes = classes;
  out.storage = storage;
  if (streamed()) {
    out.files = files;
    for (int64_t i : indices) {
      out.ids.push_back(ids[static_cast<size_t>(i)]);
      out.labels.push_back(labels[static_cast<size_t>(i)]);
    }
    return out;
  }
  out.pixels.resize(indices.size() * image_bytes());
  for (size_t k = 0; k < indices.size(); ++k) {
    std::copy_n(image(indices[k]), image_bytes(), out.image(k));
    out.labels.push_back(labels[indices[k]]);
  }
  return out;
}

namespace {
// The N of synthetic:N.
int64_t synthetic_count(const std::string& spec, const std::string& arg) {
  const std::optional<int64_t> n = parse_count(arg);
  if (!n || *n < 1 || *n > 10000000)
    throw InputError("dataset '" + spec + "': synthetic:N needs an image count from 1 to 10000000");
  return *n;
}
}  // namespace

void check_dataset_spec(const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon), arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (kind != "fashion-mnist" && kind != "mnist" && kind != "cifar10" && kind != "folder" && kind != "list" &&
      kind != "synthetic")
    throw InputError("unknown dataset '" + printable(spec) +
                     "' (use fashion-mnist, mnist:DIR, cifar10:DIR, folder:DIR, list:FILE or synthetic)");
  if (colon != std::string::npos && arg.empty() && (kind == "fashion-mnist" || kind == "synthetic"))
    throw InputError("dataset '" + printable(spec) + "': nothing after ':'; give " +
                     (kind == "synthetic" ? "synthetic:N (an image count) or synthetic alone"
                                          : "fashion-mnist:DIR, or fashion-mnist alone for the packaged copy"));
  if (arg.empty() && (kind == "mnist" || kind == "cifar10" || kind == "folder" || kind == "list"))
    throw InputError("dataset '" + printable(spec) + "' needs a " +
                     (kind == "list" ? "file: list:FILE" : "folder: " + kind + ":DIR"));
  if (kind == "synthetic" && !arg.empty()) synthetic_count(spec, arg);
  if (kind == "list" || arg.empty() || kind == "synthetic") return;  // a list's path may hold {split}
  std::error_code ec;
  if (!fs::is_directory(arg, ec))
    throw InputError("dataset '" + printable(spec) + "': " + printable(arg) +
                     (fs::exists(arg, ec) ? ": is a file, not a folder" : ": no such folder"));
}

std::string absolute_dataset_spec(const std::string& spec) {
  const size_t colon = spec.find(':');
  if (colon == std::string::npos || spec.compare(0, colon, "synthetic") == 0) return spec;
  const std::string arg = spec.substr(colon + 1);
  if (arg.empty()) return spec;
  // Symbolic links and `..` resolved as the kernel resolves them (`link/..` is the link target's
  // parent), and one spelling per folder (`imgs/`, `./imgs` and `imgs` are one).
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(fs::absolute(arg, ec), ec);
  return ec || canonical.empty() ? spec : spec.substr(0, colon + 1) + canonical.string();
}

Dataset load_dataset(const std::string& spec, Split split, const LoadOptions& options) {
  check_dataset_spec(spec);
  auto colon = spec.find(':');
  std::string kind = spec.substr(0, colon);
  std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (options.resize > 0 && options.center_crop == 0)
    throw InputError("data.resize: needs data.center_crop (after resizing the shorter side, images of other aspect "
                     "ratios differ in shape); e.g. data.resize=256 data.center_crop=224");
  if (options.center_crop > 0 && options.image_size > 0 && options.image_size != options.center_crop)
    throw InputError("data.image_size: " + std::to_string(options.image_size) + " contradicts data.center_crop " +
                     std::to_string(options.center_crop) + " (the crop is the image size); set only one");
  Dataset d;
  if (kind == "fashion-mnist") {
    d = load_idx_dir(arg.empty() ? kFashionMnistDir : arg, split, kFashionClasses);
  } else if (kind == "mnist") {
    d = load_idx_dir(arg, split, kDigits);
  } else if (kind == "cifar10") {
    d = load_cifar_dir(arg, split);
  } else if (kind == "folder") {
    // ROOT/train and ROOT/test select the split; otherwise the folder is used for both.
    fs::path sub = fs::path(arg) / split_name(split);
    std::error_code ec;
    const bool has_train = fs::is_directory(fs::path(arg) / "train", ec), has_test = fs::is_directory(fs::path(arg) / "test", ec);
    const bool split_dirs = has_train && has_test;
    if (has_train != has_test) {  // one split folder of class folders (not a class called "train")
      const std::string one = has_train ? "train" : "test", other = has_train ? "test" : "train";
      bool holds_folders = false;
      for (fs::directory_iterator it(fs::path(arg) / one, ec), end; !ec && it != end && !holds_folders; it.increment(ec))
        holds_folders = it->is_directory(ec) && it->path().filename().string()[0] != '.';
      if (holds_folders)
        throw InputError(printable(arg) + ": holds " + one + "/ with class folders but no " + other +
                         "/; a folder dataset is ROOT/train/<class>/ and ROOT/test/<class>/, or ROOT/<class>/ for both splits");
    }
    const std::string root = split_dirs ? sub.string() : arg;
    ImageIndex index = index_folder(root);
    if (split_dirs && split == Split::Test) use_training_classes(index, root, (fs::path(arg) / "train").string());
    d = open_images(std::move(index), options, root);
  } else if (kind == "list") {
    // list:DIR/{split}.csv names one list per split; the training list fixes the classes.
    const size_t at = arg.find("{split}");
    std::string list = arg, classes_from;
    auto with = [&](const std::string& name) {
      std::string out = arg;
      for (size_t p = out.find("{split}"); p != std::string::npos; p = out.find("{split}", p + name.size()))
        out.replace(p, 7, name);
      return out;
    };
    if (at != std::string::npos) {
      list = with(split_name(split));
      if (split != Split::Train) classes_from = with("train");
    }
    d = open_images(index_list(list, classes_from), options, list);
  } else if (kind == "synthetic") {
    int64_t n = split == Split::Train ? 2000 : 500;
    if (!arg.empty()) {
      n = synthetic_count(spec, arg);
      if (split == Split::Test) n = std::max<int64_t>(1, n / 4);
    }
    d = make_synthetic(n, split == Split::Train ? 1 : 2);
  }
  // Class names go into classes.txt (a line each), JSON and CSV files and plots: a line break
  // split one class into two lines of classes.txt (the run could not be evaluated again), and
  // bytes that are not UTF-8 stopped the JSON writer half way through a run folder.
  for (const std::string& name : d.classes) {
    const bool control = std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
    if (control || !valid_utf8(name))
      throw InputError("dataset '" + printable(spec) + "': class name '" + printable(name) + "' " +
                       (control ? "holds a line break, tab or other control character" : "is not valid UTF-8 text") +
                       "; rename the class (its folder, list label or classes.txt line)");
  }
  // Another dataset's classes are matched to a model's by name, exactly or with case, spaces and
  // punctuation ignored: `Cat` and `cat` are two classes here, and only their exact names (or a
  // --class-map) tell them apart there.
  std::map<std::string, std::string> keys;
  for (const std::string& name : d.classes)
    if (auto [it, fresh] = keys.emplace(class_key(name), name); !fresh) {
      std::fprintf(stderr, "note: %s: classes '%s' and '%s' differ only in case, spaces or punctuation; they are two "
                   "classes, and evaluating on other data matches them by exact name only (or --class-map)\n",
                   printable(spec).c_str(), printable(it->second).c_str(), printable(name).c_str());
      break;
    }
  if (d.size() == 0)  // nothing to train on or score: every number would be 0 or NaN
    throw InputError("dataset '" + spec + "': the " + split_name(split) + " split holds no images");
  // A folder's images are decoded straight to the geometry asked for; the rest convert now.
  const bool files = kind == "folder" || kind == "list";
  const int64_t stored_height = d.height, stored_width = d.width;
  d = convert(d, files ? LoadOptions{options.channels} : options);
  // As image folders say it (open_images): a size the caller chose, not the user, is said.
  if (!files && !options.size_from.empty() && options.center_crop == 0 &&
      (stored_height != d.height || stored_width != d.width))
    std::fprintf(stderr, "note: %s: %zu of %zu images are not %lldx%lld (%s) and were resized to it (they are %lldx%lld, width x height)\n",
                 printable(spec).c_str(), d.size(), d.size(), (long long)d.width, (long long)d.height,
                 options.size_from.c_str(), (long long)stored_width, (long long)stored_height);
  d.name = kind + "/" + split_name(split);
  return d;
}

std::string class_key(const std::string& name) {
  std::string key;
  for (unsigned char c : name)
    if (c >= 0x80 || std::isalnum(c)) key += static_cast<char>(c >= 0x80 ? c : std::tolower(c));  // UTF-8 kept whole
  return key;
}

TrainValSplit split_train_val(const Dataset& data, double val_fraction, uint64_t seed) {
  require(val_fraction >= 0 && val_fraction < 1, "val_fraction must be in [0, 1)");
  std::vector<std::vector<int64_t>> by_class(data.classes.size());
  for (size_t i = 0; i < data.size(); ++i) by_class[data.labels[i]].push_back(static_cast<int64_t>(i));
  TrainValSplit s;
  Rng rng({seed, stream::kValidationSplit});
  for (auto& idx : by_class) {
    shuffle(idx, rng);
    size_t n_val = static_cast<size_t>(std::llround(val_fraction * idx.size()));
    s.val.insert(s.val.end(), idx.begin(), idx.begin() + n_val);
    s.train.insert(s.train.end(), idx.begin() + n_val, idx.end());
  }
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.val.begin(), s.val.end());
  return s;
}

ChannelStats channel_stats(const Dataset& data) {
  ChannelStats s;
  size_t c = data.channels;
  std::vector<double> sum(c, 0), sq(c, 0);
  auto add = [&](const uint8_t* px, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      double v = px[i];
      sum[i % c] += v;
      sq[i % c] += v * v;
    }
  };
  size_t n = data.pixels.size();
  if (data.streamed()) {  // decoding every image would take as long as an epoch: a sample
    const size_t images = data.size(), k = std::min(images, kStatsSample);
    std::vector<uint8_t> scratch;
    size_t used = 0;
    for (size_t j = 0; j < k; ++j) {
      try {
        add(data.fetch(j * images / k, scratch), data.image_bytes());
        ++used;
      } catch (const UndecodableImage&) {  // data.skip_bad_images: left out of the sample
      }
    }
    require(used > 0, data.name + ": no image of the sample decodes");
    n = used * data.image_bytes();
    s.sampled = k < images ? k : 0;
  } else {
    add(data.pixels.data(), n);
  }
  double per_channel = static_cast<double>(n / c);
  for (size_t k = 0; k < c; ++k) {
    double m = sum[k] / per_channel;
    double var = std::max(0.0, sq[k] / per_channel - m * m);
    s.mean.push_back(m / 255.0);
    s.std.push_back(std::sqrt(var) / 255.0);
  }
  return s;
}

}  // namespace ventral
