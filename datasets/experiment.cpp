#include "datasets/experiment.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <tuple>

#include <yaml-cpp/yaml.h>

#include "core/error.hpp"
#include "core/text.hpp"
#include "core/rng.hpp"
#include "core/threads.hpp"
#include "datasets/perturb.hpp"

namespace ventral {

std::pair<double, double> crop_scale(const Config& cfg) {
  const std::vector<double> scale = cfg.get_floats("data.augment.random_resized_crop_scale");
  if (scale.size() != 2 || scale[0] > scale[1])
    throw InputError(cfg.origin("data.augment.random_resized_crop_scale") +
                     ": key 'data.augment.random_resized_crop_scale' must be [min, max] with min <= max");
  return {scale[0], scale[1]};
}

bool one_image_set(const std::string& spec) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string arg = spec.substr(spec.find(':') + 1);
  return (spec.rfind("folder:", 0) == 0 &&
          !(fs::is_directory(fs::path(arg) / "train", ec) && fs::is_directory(fs::path(arg) / "test", ec))) ||
         (spec.rfind("list:", 0) == 0 && arg.find("{split}") == std::string::npos);
}

void set_dataset_spec(Config& cfg, const std::string& spec, const std::string& origin) {
  YAML::Emitter quoted;  // a path may hold what YAML reads otherwise (" #", ": ")
  quoted << YAML::DoubleQuoted << spec;
  cfg.set("data.dataset=" + std::string(quoted.c_str()), origin);
}

void make_dataset_absolute(Config& cfg) {
  const std::string spec = cfg.get_string("data.dataset"), absolute = absolute_dataset_spec(spec);
  if (absolute != spec) set_dataset_spec(cfg, absolute, cfg.origin("data.dataset"));
}

Preprocessing preprocessing(const Config& cfg) {
  // The presets: torchvision's ImageNet normalisation (its models' documentation); CIFAR-10's
  // and MNIST's training-set statistics as the field quotes them.
  struct Preset {
    const char* name;
    int64_t channels, image_size, resize, center_crop;
    std::vector<double> mean, std;
  };
  static const std::vector<Preset> presets = {
      {"none", 0, 0, 0, 0, {}, {}},
      {"imagenet", 3, 0, 256, 224, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}},
      {"cifar", 3, 32, 0, 0, {0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}},
      {"mnist", 1, 28, 0, 0, {0.1307}, {0.3081}},
  };
  const std::string name = cfg.get_string("data.preset");
  const Preset& p = *std::find_if(presets.begin(), presets.end(), [&](const Preset& q) { return q.name == name; });
  auto value = [&](const char* key, int64_t preset_value) {
    const int64_t v = cfg.get_int(key);
    return v != 0 ? v : preset_value;
  };
  // 0 keeps the stored size; below 8 no model trains, and images written or timed at it mean nothing.
  for (const char* key : {"data.image_size", "data.center_crop", "data.resize"})
    if (const int64_t side = cfg.get_int(key); side > 0 && side < 8)
      throw InputError(cfg.origin(key) + ": key '" + key + "' is " + std::to_string(side) +
                       ": the smallest image side ventral takes is 8 (0 keeps the dataset's own size)");
  Preprocessing out;
  out.load.channels = value("data.channels", p.channels);
  if (out.load.channels != 0 && out.load.channels != 1 && out.load.channels != 3)
    throw InputError("key 'data.channels': " + std::to_string(out.load.channels) +
                     " is not supported (0 = as stored, 1 = gray, 3 = RGB)");
  out.load.resize = value("data.resize", p.resize);
  out.load.center_crop = value("data.center_crop", p.center_crop);
  out.load.image_size = value("data.image_size", p.image_size);
  const int64_t size = cfg.get_int("data.image_size");
  if (size != 0 && cfg.get_int("data.resize") == 0 && cfg.get_int("data.center_crop") == 0)
    out.load.resize = 0, out.load.center_crop = 0;  // an explicit size replaces the preset's resize and crop
  if (out.load.center_crop != 0) {
    if (size != 0 && size != out.load.center_crop)
      throw InputError("key 'data.image_size' (" + std::to_string(size) + ") contradicts data.center_crop (" +
                       std::to_string(out.load.center_crop) + "), which sets the image size; set only one");
    out.load.image_size = 0;
  }
  if (out.load.resize != 0 && out.load.center_crop == 0)
    throw InputError(cfg.origin("data.resize") + ": key 'data.resize' needs data.center_crop (after resizing the shorter side, images of other "
                     "aspect ratios differ in shape), e.g. data.resize=256 data.center_crop=224");
  out.load.stream = cfg.get_string("data.stream");
  out.load.skip_bad_images = cfg.get_bool("data.skip_bad_images");
  out.mean = cfg.get_floats("data.mean");
  out.std = cfg.get_floats("data.std");
  if (out.mean.empty()) out.mean = p.mean;
  if (out.std.empty()) out.std = p.std;
  if (out.load.channels != 0)
    check_mean_std(cfg, out.mean, out.std, out.load.channels,
                   "data.channels" + (name != "none" ? ", or data.preset " + name : std::string()), true);
  return out;
}

namespace {
void check_channel_values(const char* key, const std::vector<double>& values, int64_t channels, const std::string& where,
                          const std::string& why, bool allow_empty) {
  if (values.size() != static_cast<size_t>(channels) && !(allow_empty && values.empty()))
    throw InputError(where + ": key '" + key + "' has " + std::to_string(values.size()) + " values for " +
                     std::to_string(channels) + "-channel images (" + why + ")");
}
}  // namespace

void check_mean_std(const std::vector<double>& mean, const std::vector<double>& std, int64_t channels,
                    const std::string& where, const std::string& why, bool allow_empty) {
  check_channel_values("data.mean", mean, channels, where, why, allow_empty);
  check_channel_values("data.std", std, channels, where, why, allow_empty);
}

void check_mean_std(const Config& cfg, const std::vector<double>& mean, const std::vector<double>& std,
                    int64_t channels, const std::string& why, bool allow_empty) {
  check_channel_values("data.mean", mean, channels, cfg.origin("data.mean"), why, allow_empty);
  check_channel_values("data.std", std, channels, cfg.origin("data.std"), why, allow_empty);
}

ExperimentData load_experiment_data(const Config& cfg, bool need_test) {
  ExperimentData d;
  const Preprocessing pre = preprocessing(cfg);
  const LoadOptions load = pre.load;
  std::string spec = cfg.get_string("data.dataset");
  d.train = load_dataset(spec, Split::Train, load);
  if (need_test) {
    d.test = load_dataset(spec, Split::Test, load);
    // One set of images for both splits: the "test" numbers are then the fit to the training images.
    const bool one_set = one_image_set(spec);
    if (one_set) d.test.name += " (the training images: no separate test split)";  // in test.json and reports
    if (one_set)
      std::fprintf(stderr, "note: %s has no separate test split, so the test images are the training images (the "
                   "test accuracy measures fit, not generalisation); give ROOT/train and ROOT/test folders, or a "
                   "list:DIR/{split}.csv, for a held-out test\n", printable(spec).c_str());
    // A model trained at one size and tested at another would be scored on inputs it never saw
    // (convolutional models take any size without a word).
    const auto shape = [](const Dataset& x) {
      return std::to_string(x.channels) + "x" + std::to_string(x.height) + "x" + std::to_string(x.width);
    };
    if (shape(d.test) != shape(d.train))
      throw InputError(cfg.origin("data.dataset") + ": key 'data.dataset' (" + printable(spec) + "): the test split's images are " +
                       shape(d.test) + " (channels x height x width), the training split's " + shape(d.train) +
                       "; set data.image_size (and data.channels) to bring both to one shape");
  }
  d.split = split_train_val(d.train, cfg.get_float("data.val_fraction"), static_cast<uint64_t>(cfg.get_int("seed")));
  const int64_t limit = cfg.get_int("data.max_train_images");
  if (limit > 0 && static_cast<size_t>(limit) > d.split.train.size())
    throw InputError(cfg.origin("data.max_train_images") + ": key 'data.max_train_images' is " + std::to_string(limit) + " but " +
                     cfg.get_string("data.dataset") + " holds " + std::to_string(d.split.train.size()) +
                     " training images after validation is held out; give at most that (0 = all)");
  if (limit > 0 && static_cast<size_t>(limit) < d.split.train.size()) {
    Rng rng({static_cast<uint64_t>(cfg.get_int("seed")), stream::kTrainSubset});
    shuffle(d.split.train, rng);
    d.split.train.resize(static_cast<size_t>(limit));
    std::sort(d.split.train.begin(), d.split.train.end());
  }
  require(!d.split.train.empty(), cfg.origin("data.val_fraction") + ": data.val_fraction leaves no training images");
  if (cfg.get_float("data.val_fraction") > 0 && d.split.val.empty())
    throw InputError(cfg.origin("data.val_fraction") + ": key 'data.val_fraction' (" + format_number("%g", cfg.get_float("data.val_fraction")) +
                     ") holds out no image of the " + std::to_string(d.train.size()) +
                     " training images (rounded per class); raise it, or set 0 to train without validation");
  if (cfg.get_bool("data.normalize")) {
    d.mean = pre.mean;
    d.std = pre.std;
    if (d.mean.empty() || d.std.empty()) {
      ChannelStats s = channel_stats(d.train.subset(d.split.train));
      if (s.sampled > 0)
        std::fprintf(stderr, "note: data.mean / data.std measured on %zu of the %zu training images (evenly spaced; "
                     "set data.mean and data.std, or data.preset, to give them)\n", s.sampled, d.split.train.size());
      if (d.mean.empty()) d.mean = s.mean;
      if (d.std.empty()) d.std = s.std;
    }
    check_mean_std(cfg, d.mean, d.std, d.train.channels, "the dataset's");
    for (double& s : d.std) s = std::max(s, 1e-6);
  }
  return d;
}

namespace {
// data.loader_threads, or half the cores (the other half computes).
int64_t loader_threads(const Config& cfg) {
  return cfg.get_int_or_auto("data.loader_threads").value_or(std::max<int64_t>(1, available_cores() / 2));
}
}  // namespace

LoaderPerturbation training_perturbation(const Config& cfg) {
  LoaderPerturbation p;
  try {
    p.specs = parse_perturbations(cfg.get_string("data.augment.perturb"));
  } catch (const InputError& e) {
    throw InputError(cfg.origin("data.augment.perturb") + ": key 'data.augment.perturb': " + e.what());
  }
  for (const PerturbationSpec& spec : p.specs)
    if (std::all_of(spec.severities.begin(), spec.severities.end(), [](int s) { return s == 0; }))
      throw InputError(cfg.origin("data.augment.perturb") + ": key 'data.augment.perturb': " + spec.family +
                       " at severity 0 is the clean image, so it perturbs nothing; give severities 1-5 (the share "
                       "left clean is data.augment.perturb_fraction's)");
  p.fraction = cfg.get_float("data.augment.perturb_fraction");
  return p;
}

LoaderOptions task_loader_options(const Config& cfg, const ExperimentData& data) {
  LoaderOptions o = evaluation_loader_options(cfg, data.mean, data.std);
  o.perturbation = training_perturbation(cfg);
  o.seed = static_cast<uint64_t>(cfg.get_int("seed"));
  return o;
}

LoaderOptions loader_options(const Config& cfg, const ExperimentData& data, bool training) {
  if (!training) return evaluation_loader_options(cfg, data.mean, data.std);
  LoaderOptions o;
  o.batch_size = cfg.get_int("train.batch_size");
  o.shuffle = true;
  o.drop_last = true;  // a final batch of one would break batch norm
  o.augment = true;
  o.augmentation.crop_padding = cfg.get_int("data.augment.crop_padding");
  o.augmentation.hflip = cfg.get_bool("data.augment.hflip");
  o.augmentation.erasing = cfg.get_float("data.augment.erasing");
  o.augmentation.resized_crop = cfg.get_bool("data.augment.random_resized_crop");
  std::tie(o.augmentation.scale_min, o.augmentation.scale_max) = crop_scale(cfg);
  o.perturbation = training_perturbation(cfg);
  o.mean = data.mean;
  o.std = data.std;
  o.threads = loader_threads(cfg);
  o.prefetch = cfg.get_int("data.prefetch");
  o.seed = static_cast<uint64_t>(cfg.get_int("seed"));
  return o;
}

LoaderOptions evaluation_loader_options(const Config& cfg, const std::vector<double>& mean,
                                        const std::vector<double>& std) {
  LoaderOptions o;
  o.batch_size = cfg.get_int("train.eval_batch_size");
  o.shuffle = false;
  o.mean = mean;
  o.std = std;
  o.threads = loader_threads(cfg);
  o.prefetch = cfg.get_int("data.prefetch");
  return o;
}

}  // namespace ventral
