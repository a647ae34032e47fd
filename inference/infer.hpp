#pragma once
/// The one inference path: what validation, the final test, `ventral eval` and `ventral bench`
/// all run, so a number is the same whichever of them computes it.
#include <set>
#include <string>
#include <vector>

#include "core/precision.hpp"

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

/// model.forward(images, steps) in the model's precision (CPU autocast for bf16), the logits
/// returned as fp32 whatever the precision: the forward pass of training and of infer().
std::vector<torch::Tensor> forward_logits(VisionModelImpl& model, const torch::Tensor& images, int64_t steps);

/// Resolves the `precision` setting (fp32|bf16|auto, core/precision.hpp) for `model` and
/// applies it (use_precision), then the `memory_format` setting (apply_memory_format: under
/// auto the faster layout can depend on the precision). `auto` probes inference on a batch of
/// `channels` × `image_size`² images in fp32 and in bf16, each in its own layout, when `flags`
/// show bf16 hardware. InputError for bf16 on a model that is not on the CPU (autocast is set up
/// for the CPU only).
PrecisionChoice choose_precision(VisionModelImpl& model, const std::string& setting, const std::string& memory_format,
                                 int64_t channels, int64_t image_size, const std::set<std::string>& flags = cpu_flags());

/// Logits of `model` for `images` (already on the model's device and in its memory format,
/// see VisionModelImpl::inputs) after `steps` steps: eval mode, no autograd
/// (c10::InferenceMode, under which ResNets fold their batch norms into the convolutions), in
/// the model's precision, logits as fp32.
/// A model in training mode is switched to eval mode for the call and switched back.
std::vector<torch::Tensor> infer(VisionModelImpl& model, const torch::Tensor& images, int64_t steps);

}  // namespace ventral
