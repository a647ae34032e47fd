#pragma once
/// Accuracy and loss at every step of a model over a loader: shared by validation during
/// training, the final test and `ventral eval`.
#include "datasets/loader.hpp"
#include "models/model.hpp"

namespace ventral {

struct StepMetrics {
  std::vector<int64_t> steps;     ///< 1-based step of each entry
  std::vector<double> accuracy;   ///< fraction correct at each step
  std::vector<double> loss;       ///< mean cross-entropy at each step
  int64_t n = 0;                  ///< images evaluated
};

/// The 1-based steps at which a model run for `steps` steps produces logits.
std::vector<int64_t> readout_steps(const VisionModelImpl& model, int64_t steps);

/// Evaluates `model` (in eval mode, inference mode) for `steps` steps on one epoch of
/// `loader` (epoch 0). The model's training mode is restored afterwards.
StepMetrics evaluate(VisionModelImpl& model, BatchLoader& loader, int64_t steps, const torch::Device& device,
                     const std::string& progress_label = "");

}  // namespace ventral
