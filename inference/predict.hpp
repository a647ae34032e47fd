#pragma once
/// Predictions of a model on a dataset at a list of steps, and the one rule for which steps a
/// model is read out at.
#include <string>
#include <vector>

#include "datasets/loader.hpp"
#include "models/model.hpp"

namespace ventral {

/// The 1-based steps at which one forward pass of `steps` steps yields logits: every step for
/// models that read out at every step, the last one for those that read out once, and
/// default_steps() for models whose computation does not unroll with `steps`.
std::vector<int64_t> readout_steps(const VisionModelImpl& model, int64_t steps);

/// The steps `model` is evaluated at when `wanted` (sorted, unique) are asked for: all of them
/// for a model that unrolls, else its one readout (feed-forward models; CORnet-S's fixed unroll).
std::vector<int64_t> evaluated_steps(const VisionModelImpl& model, const std::vector<int64_t>& wanted);

/// Index into `steps` of a model's headline readout: the step count it was trained with when
/// that was evaluated, else the last evaluated step. Steps beyond training are extrapolation.
size_t headline_index(const std::vector<int64_t>& steps, int64_t trained_steps);

/// A model's predicted class and its softmax confidence for every image (row, in the order the
/// loader delivered them) and evaluated step (column), with the images' labels and the summed
/// cross-entropy per step.
struct Predictions {
  std::vector<int64_t> steps;
  std::vector<int64_t> pred;
  std::vector<float> conf;
  std::vector<int64_t> labels;
  std::vector<double> loss_sum;  ///< per step: Σ over images of the cross-entropy
  /// Each row's position among the images evaluated (the loader's order) where some are left
  /// out (images that do not decode, with data.skip_bad_images); empty when row i is image i.
  std::vector<int64_t> index;
  size_t size() const { return labels.size(); }
  /// Row i's position among the images evaluated.
  int64_t image(size_t i) const { return index.empty() ? static_cast<int64_t>(i) : index[i]; }
  bool correct(size_t i, size_t k, const std::vector<int64_t>& truth) const {
    return pred[i * steps.size() + k] == truth[i];
  }
  bool correct(size_t i, size_t k) const { return correct(i, k, labels); }
  /// Fraction correct at the k-th evaluated step.
  double accuracy(size_t k) const;
  /// The predictions of the k-th evaluated step alone.
  Predictions at_step(size_t k) const;
};

/// Backward masking (Tang et al. 2018): the image is shown at steps 1..present, then a mask:
/// `blank` (zeros after normalisation: the training mean) or `noise` (standard normal in
/// normalised units, drawn per image from (seed, image index), so it does not depend on batching).
struct MaskSchedule {
  int64_t present = 1;
  std::string mask = "blank";
  uint64_t seed = 0;
};
/// The masks for a batch of `images` (N × C × H × W, any device) whose dataset indices are `indices`.
torch::Tensor mask_images(const MaskSchedule& schedule, const torch::Tensor& images, const std::vector<int64_t>& indices);

/// The one prediction loop: runs `model` (through infer()) over one unshuffled epoch of
/// `loader` and records its predictions at evaluated_steps(model, wanted). Shows progress under
/// `label` when it is not empty. With `masking`, every batch is presented on that schedule
/// (the model must take_input_every_step(); std::invalid_argument otherwise).
Predictions predict(VisionModelImpl& model, BatchLoader& loader, const std::vector<int64_t>& wanted,
                    const std::string& label = "", const MaskSchedule* masking = nullptr);
/// predict() over every image of `images`, in index order: row i is image i.
Predictions predict(VisionModelImpl& model, const Dataset& images, const std::vector<int64_t>& wanted,
                    const LoaderOptions& options, const std::string& label = "", const MaskSchedule* masking = nullptr);

}  // namespace ventral
