#pragma once
/// The data of an experiment as its config describes it: training set with its seeded
/// validation split, test set, normalisation statistics and loader options.
#include "core/config.hpp"
#include "datasets/loader.hpp"

namespace ventral {

struct ExperimentData {
  Dataset train;          ///< the whole training split (train + validation indices)
  Dataset test;
  TrainValSplit split;    ///< indices into `train`
  std::vector<double> mean, std;  ///< per channel, [0,1] units (empty: no normalisation)
};

/// What a config asks of every image: channels and geometry (data.channels, data.image_size,
/// data.resize, data.center_crop) and the normalisation (data.mean, data.std; empty = measure on
/// the training split), each taken from data.preset where the key is left at its default.
struct Preprocessing {
  LoadOptions load;
  std::vector<double> mean, std;
};
Preprocessing preprocessing(const Config& cfg);
/// InputError unless data.mean and data.std (`mean`, `std`; an empty one skipped when
/// `allow_empty`) hold one value per channel: "`where`: key 'data.mean' has N values for
/// C-channel images (`why`)", where `why` says where C comes from.
void check_mean_std(const std::vector<double>& mean, const std::vector<double>& std, int64_t channels,
                    const std::string& where, const std::string& why, bool allow_empty = false);
/// The same, naming where each key was set in `cfg` (its file, or the command line).
void check_mean_std(const Config& cfg, const std::vector<double>& mean, const std::vector<double>& std,
                    int64_t channels, const std::string& why, bool allow_empty = false);

/// Sets data.dataset to `spec` (quoted for YAML), recorded as set by `origin`.
void set_dataset_spec(Config& cfg, const std::string& spec, const std::string& origin);
/// Sets data.dataset to absolute_dataset_spec() of itself (keeping where it was set): what a new
/// run records, and what a config given to `train --resume` or a study is compared in.
void make_dataset_absolute(Config& cfg);

/// Whether SPEC is one set of images for both splits: folder:ROOT without ROOT/train and
/// ROOT/test, or list:FILE without {split} (its "test" images are the training images).
bool one_image_set(const std::string& spec);

/// Loads data.dataset with data.channels / data.image_size, splits off data.val_fraction
/// (seeded), and takes data.mean / data.std or, when empty, measures them on the training
/// indices. `need_test`: also load the test split.
ExperimentData load_experiment_data(const Config& cfg, bool need_test = true);

/// data.augment.perturb and data.augment.perturb_fraction (off when the spec is empty);
/// InputError naming the key for a bad spec.
LoaderPerturbation training_perturbation(const Config& cfg);

/// data.augment.random_resized_crop_scale as (min, max); InputError naming the key unless it is
/// two values with min <= max. The one check, for `ventral config` and the training loader alike.
std::pair<double, double> crop_scale(const Config& cfg);

/// Loader options for training (shuffled, augmented, drop_last) or evaluation.
LoaderOptions loader_options(const Config& cfg, const ExperimentData& data, bool training);
/// Evaluation batches of the trained task: evaluation_loader_options() plus the training
/// perturbation, drawn as in epoch 0 with the run's seed (validation that selects best.pt, and
/// test.json's accuracy under the training perturbation). Clean options when it is off.
LoaderOptions task_loader_options(const Config& cfg, const ExperimentData& data);
/// Evaluation batches (the one copy: validation, test, `ventral eval`): unshuffled,
/// unaugmented, train.eval_batch_size, data.loader_threads and data.prefetch, normalised with
/// `mean` / `std`.
LoaderOptions evaluation_loader_options(const Config& cfg, const std::vector<double>& mean,
                                        const std::vector<double>& std);

}  // namespace ventral
