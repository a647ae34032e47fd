#pragma once
/// Accuracy and loss at every readout step of a model over a loader: validation during
/// training and the final test (test.json). Built on predict(), the loop `ventral eval` runs.
#include "inference/predict.hpp"

namespace ventral {

struct StepMetrics {
  std::vector<int64_t> steps;     ///< 1-based step of each entry
  std::vector<double> accuracy;   ///< fraction correct at each step
  std::vector<double> loss;       ///< mean cross-entropy at each step
  int64_t n = 0;                  ///< images evaluated
};

/// Evaluates `model` (eval mode, inference mode) run for `steps` steps, read out at
/// readout_steps(model, steps), on one unshuffled epoch of `loader`. The model's training
/// mode is restored afterwards.
StepMetrics evaluate(VisionModelImpl& model, BatchLoader& loader, int64_t steps, const std::string& progress_label = "");

}  // namespace ventral
