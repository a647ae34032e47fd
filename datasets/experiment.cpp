#include "datasets/experiment.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/threads.hpp"
#include "datasets/perturb.hpp"

namespace ventral {

ExperimentData load_experiment_data(const Config& cfg, bool need_test) {
  ExperimentData d;
  LoadOptions load{cfg.get_int("data.channels"), cfg.get_int("data.image_size")};
  std::string spec = cfg.get_string("data.dataset");
  d.train = load_dataset(spec, Split::Train, load);
  if (need_test) d.test = load_dataset(spec, Split::Test, load);
  d.split = split_train_val(d.train, cfg.get_float("data.val_fraction"), static_cast<uint64_t>(cfg.get_int("seed")));
  if (int64_t limit = cfg.get_int("data.max_train_images"); limit > 0 && static_cast<size_t>(limit) < d.split.train.size()) {
    Rng rng({static_cast<uint64_t>(cfg.get_int("seed")), stream::kTrainSubset});
    shuffle(d.split.train, rng);
    d.split.train.resize(static_cast<size_t>(limit));
    std::sort(d.split.train.begin(), d.split.train.end());
  }
  require(!d.split.train.empty(), cfg.source() + ": data.val_fraction leaves no training images");
  if (cfg.get_bool("data.normalize")) {
    d.mean = cfg.get_floats("data.mean");
    d.std = cfg.get_floats("data.std");
    if (d.mean.empty() || d.std.empty()) {
      ChannelStats s = channel_stats(d.train.subset(d.split.train));
      if (d.mean.empty()) d.mean = s.mean;
      if (d.std.empty()) d.std = s.std;
    }
    auto channels = static_cast<size_t>(d.train.channels);
    require(d.mean.size() == channels,
            cfg.source() + ": key 'data.mean' has " + std::to_string(d.mean.size()) + " values for " +
                std::to_string(channels) + " channels");
    require(d.std.size() == channels,
            cfg.source() + ": key 'data.std' has " + std::to_string(d.std.size()) + " values for " +
                std::to_string(channels) + " channels");
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
    std::string why = e.what();
    if (why.rfind("--perturb: ", 0) == 0) why = why.substr(11);
    throw InputError(cfg.source() + ": key 'data.augment.perturb': " + why);
  }
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
