#pragma once
/// The one inference path: what validation, the final test, `ventral eval` and `ventral bench`
/// all run, so a number is the same whichever of them computes it.
#include <vector>

#include "models/model.hpp"

namespace ventral {

/// Puts a module in eval mode for the guard's lifetime and then restores the mode it had.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(torch::nn::Module& module) : module_(module), was_training_(module.is_training()) {
    if (was_training_) module_.eval();
  }
  ~EvalModeGuard() {
    if (was_training_) module_.train();
  }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

/// Logits of `model` for `images` (already on the model's device and in its memory format,
/// see VisionModelImpl::inputs) after `steps` steps: eval mode, no autograd
/// (c10::InferenceMode, under which ResNets fold their batch norms into the convolutions).
/// A model in training mode is switched to eval mode for the call and switched back.
std::vector<torch::Tensor> infer(VisionModelImpl& model, const torch::Tensor& images, int64_t steps);

}  // namespace ventral
