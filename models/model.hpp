#pragma once
/// The one interface every model implements. Trainer, evaluator, robustness sweep and report
/// are written once against it.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/precision.hpp"

namespace ventral {

/// Receives a named per-area activation (e.g. "V4") at a step (0-based) during forward.
using ActivationProbe = std::function<void(const std::string& area, int64_t step, const torch::Tensor&)>;

class VisionModelImpl : public torch::nn::Module {
 public:
  /// Runs `steps` steps on a batch of images (N × C × H × W). Returns the logits (N × classes)
  /// of every step when reads_out_every_step(), otherwise those of the final step only.
  /// Feed-forward models have one step and ignore `steps`.
  virtual std::vector<torch::Tensor> forward(const torch::Tensor& images, int64_t steps) = 0;

  /// Whether the model has recurrent (or weight-shared, unrolled) computation.
  virtual bool recurrent() const { return false; }
  /// The number of steps the model runs by default (and was built/trained for).
  virtual int64_t default_steps() const { return 1; }
  /// Whether the `steps` passed to forward() changes the computation: false for feed-forward
  /// models and for fixed unrolls (CORnet-S), which are read out once whatever is asked.
  virtual bool unrolls() const { return recurrent(); }
  /// True when one forward pass yields a readout at every step.
  virtual bool reads_out_every_step() const { return true; }
  /// Names of the areas reported to the probe, bottom-up.
  virtual std::vector<std::string> areas() const = 0;

  /// Whether channels-last (NHWC) runs faster than contiguous NCHW for this model on CPU:
  /// oneDNN's NHWC convolutions win for narrow nets (resnet20 train 1.9x, cortical BLT
  /// 1.3x, `ventral bench --memory-format`) and lose for wide ones (CORnet).
  /// Asked again when the precision changes (VisionModelImpl::precision()): the answer may
  /// depend on it.
  virtual bool prefers_channels_last() const { return true; }

  /// Puts every 4-D parameter and buffer in `format`; inputs() converts batches to match.
  /// Call again after loading weights (a load adopts the saved layout).
  void use_memory_format(c10::MemoryFormat format);
  c10::MemoryFormat memory_format() const { return format_; }
  /// `images` (already on the model's device) in the model's memory format.
  torch::Tensor inputs(const torch::Tensor& images) const { return images.contiguous(format_); }

  /// The precision of forward passes (core/precision.hpp); forward_logits() and infer()
  /// apply it, so training, validation, evaluation and bench all run the model in it.
  void use_precision(Precision precision) { precision_ = precision; }
  Precision precision() const { return precision_; }

  /// Whether the image enters at every step (so what it sees can change from step to step):
  /// cortical models with model.input_every_step, CORnet-R and CORnet-RT.
  virtual bool takes_input_every_step() const { return false; }
  /// Presentation schedules (backward masking): while set, step t (0-based) of a model that
  /// takes_input_every_step() sees inputs[min(t, size − 1)] instead of the images passed to
  /// forward(). Each tensor has the images' shape, device and memory format. Empty: the images.
  void set_step_inputs(std::vector<torch::Tensor> inputs) { step_inputs_ = std::move(inputs); }

  /// Installs (or, with nullptr, removes) a probe that sees every area's activation.
  void set_probe(ActivationProbe probe) { probe_ = std::move(probe); }

 protected:
  void record(const std::string& area, int64_t step, const torch::Tensor& x) const {
    if (probe_) probe_(area, step, x);
  }
  /// What step `t` (0-based) sees: `images`, or the presentation schedule's input.
  const torch::Tensor& step_input(int64_t t, const torch::Tensor& images) const {
    if (step_inputs_.empty()) return images;
    return step_inputs_[static_cast<size_t>(std::min<int64_t>(t, static_cast<int64_t>(step_inputs_.size()) - 1))];
  }

 private:
  std::vector<torch::Tensor> step_inputs_;
  ActivationProbe probe_;
  c10::MemoryFormat format_ = c10::MemoryFormat::Contiguous;
  Precision precision_ = Precision::FP32;
};

using ModelPtr = std::shared_ptr<VisionModelImpl>;

/// Number of trainable parameter elements (each shared tensor counted once).
int64_t count_parameters(const torch::nn::Module& model);
/// Number of distinct parameter tensors (storage pointers) and of entries in parameters().
std::pair<size_t, size_t> unique_parameter_tensors(const torch::nn::Module& model);
/// Multiply-accumulates for one image of `channels` × `size` × `size` over a forward pass of
/// default_steps() steps (run in eval mode without autograd; the model's mode is restored).
int64_t macs_per_image(VisionModelImpl& model, int64_t channels, int64_t size);
/// macs_per_image() divided by default_steps().
int64_t macs_per_step(VisionModelImpl& model, int64_t channels, int64_t size);

/// MAC accounting: while a MacCounter is alive on a thread, the layers of models/layers.hpp add
/// their multiply-accumulates to it.
class MacCounter {
 public:
  MacCounter();
  ~MacCounter();
  MacCounter(const MacCounter&) = delete;
  MacCounter& operator=(const MacCounter&) = delete;
  int64_t total() const { return total_; }
  static void add(int64_t macs);

 private:
  int64_t total_ = 0;
  MacCounter* previous_;
};

}  // namespace ventral
