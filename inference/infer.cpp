#include "inference/infer.hpp"

namespace ventral {

std::vector<torch::Tensor> infer(VisionModelImpl& model, const torch::Tensor& images, int64_t steps) {
  EvalModeGuard eval(model);
  c10::InferenceMode guard;
  return model.forward(images, steps);
}

}  // namespace ventral
