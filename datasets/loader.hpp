#pragma once
/// The batch loader: augments uint8 images straight into a preallocated float batch tensor,
/// on its own threads, ahead of the consumer. Every random draw depends only on
/// (seed, epoch, image index), so the batches are identical whatever the thread count.
#include <torch/torch.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "core/rng.hpp"
#include "datasets/dataset.hpp"
#include "datasets/perturb.hpp"

namespace ventral {

struct Augment {
  int64_t crop_padding = 0;  ///< random crop after zero padding (0 = off)
  bool hflip = false;        ///< random horizontal flip, p = 1/2
  double erasing = 0;        ///< probability of random erasing (area .02–.4, aspect .3–3.3, value 0)
  /// torchvision's RandomResizedCrop(size, scale, ratio=(3/4, 4/3)): a crop of a random share
  /// of the image's area in [scale_min, scale_max] and a log-uniform aspect ratio, resized to
  /// the image size (PIL's bilinear). On a streamed dataset the crop is cut from the decoded
  /// file at its own resolution; in memory, from the stored image.
  bool resized_crop = false;
  double scale_min = 0.08, scale_max = 1.0;
};

/// Training under perturbation (data.augment.perturb): a share of the images is perturbed, each
/// with a family drawn uniformly from `specs` and a severity drawn uniformly from that family's
/// list. Every draw depends only on (seed, epoch, image index).
struct LoaderPerturbation {
  std::vector<PerturbationSpec> specs;  ///< empty = off
  double fraction = 1.0;                ///< share of images perturbed
  /// An evaluation condition: every image perturbed with this seed in every epoch, as
  /// perturb_dataset(data, family, severity, seed) would (one spec, one severity, fraction 1).
  bool fixed_seed = false;
  uint64_t seed = 0;
  bool on() const { return !specs.empty() && fraction > 0; }
};
/// The evaluation condition (family, severity) with `seed`: fixed_seed, fraction 1.
LoaderPerturbation evaluation_perturbation(const std::string& family, int severity, uint64_t seed);

/// What the loader does to one image in one epoch: `family` < 0 leaves it clean.
struct PerturbationDraw {
  int family = -1;  ///< index into LoaderPerturbation::specs
  int severity = 0;
};

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;
  bool augment = false;       ///< apply `augmentation` (training) or not (evaluation)
  Augment augmentation;
  /// Applied whenever on(), augmented or not: the training loader, and the validation and test
  /// loaders that measure the trained task (their draws are those of the epoch they are started with).
  LoaderPerturbation perturbation;
  std::vector<double> mean;   ///< per channel, [0,1] units; empty = no normalisation
  std::vector<double> std;
  int64_t threads = 1;
  int64_t prefetch = 2;
  uint64_t seed = 0;
  /// Data parallelism: this loader serves shard `shard_rank` of `shard_count` of every epoch
  /// (the permutation is the same on every rank: it depends on (seed, epoch) only). With
  /// `split_batches` (training) each global batch of `batch_size` images is cut into
  /// `shard_count` contiguous parts and part `shard_rank` is served, so the parts of all ranks
  /// are exactly the batch one process would see; otherwise (evaluation) every
  /// `shard_count`-th batch from batch `shard_rank` is served. Either way the shards are
  /// disjoint and together hold every image of the epoch once.
  int64_t shard_rank = 0, shard_count = 1;
  bool split_batches = true;
  /// Batches carry kNoLabel (-100, cross-entropy's ignore_index) instead of the labels: the
  /// dataset's labels still steer debris (fragments from other classes), but nobody scores them.
  bool hide_labels = false;
};

constexpr int64_t kNoLabel = -100;

struct Batch {
  torch::Tensor images;             ///< B × C × H × W float32
  torch::Tensor labels;             ///< B int64
  std::vector<int64_t> indices;     ///< dataset indices of the images
  /// Positions in the batch holding a stand-in for an image that does not decode
  /// (data.skip_bad_images): trained on in its place, left out of every evaluation.
  std::vector<int64_t> stand_ins;
};

/// The perturbation image `index` gets in `epoch` (drawn from its own stream, so switching
/// perturbation on changes no other augmentation's draws).
PerturbationDraw draw_perturbation(const LoaderOptions& options, int64_t epoch, int64_t index);
/// The seed perturb_image() is called with in `epoch`: new occluder positions every epoch (or
/// the fixed seed of an evaluation condition).
uint64_t perturbation_seed(const LoaderOptions& options, int64_t epoch);

/// The crop box (x, y, width, height) RandomResizedCrop takes from a width × height image with
/// `rng`: torchvision's get_params (ten tries, then the central crop within the ratio bounds).
struct CropBox {
  int x, y, width, height;
};
CropBox resized_crop_box(int width, int height, double scale_min, double scale_max, Rng& rng);

/// Writes image `index` of `data`, augmented with the draws of (seed, epoch, index), into `out`
/// (C × H × W floats). Exposed for tests; the loader calls it for every sample.
void render_sample(const Dataset& data, int64_t index, const LoaderOptions& options, int64_t epoch,
                   float* out);

class BatchLoader {
 public:
  /// `indices` selects the images of `data` to iterate (all when empty). `data` must outlive
  /// the loader.
  BatchLoader(const Dataset& data, std::vector<int64_t> indices, LoaderOptions options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  /// Starts (or restarts) iteration over epoch `epoch`: shuffled with (seed, epoch). Batches
  /// before `first_batch` are skipped without being built (resuming mid-epoch).
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  /// The next batch of the epoch, or nullopt at its end.
  std::optional<Batch> next();
  /// Batches this loader serves per epoch (with sharding: this shard's).
  int64_t batches_per_epoch() const;
  int64_t size() const { return static_cast<int64_t>(indices_.size()); }
  /// Images this loader serves per epoch: size() less a dropped last batch, or this shard's.
  int64_t images_per_epoch() const;

 private:
  void stop();
  void work(int64_t first);
  Batch build(int64_t b) const;
  void render_stand_in(int64_t position, float* out) const;

  const Dataset& data_;
  std::vector<int64_t> indices_;
  LoaderOptions options_;

  std::vector<int64_t> order_;
  int64_t epoch_ = 0, num_batches_ = 0, consumed_ = 0;
  std::map<int64_t, Batch> ready_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::exception_ptr error_;
};

}  // namespace ventral
