#include "inference/infer.hpp"

namespace ventral {

std::vector<torch::Tensor> infer(VisionModelImpl& model, const torch::Tensor& images, int64_t steps) {
  const bool was_training = model.is_training();
  if (was_training) model.eval();
  std::vector<torch::Tensor> logits;
  {
    c10::InferenceMode guard;
    logits = model.forward(images, steps);
  }
  if (was_training) model.train();
  return logits;
}

}  // namespace ventral
