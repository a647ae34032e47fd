#include "inference/infer.hpp"

#include <chrono>

#include "core/error.hpp"
#include "models/registry.hpp"

namespace ventral {

std::vector<torch::Tensor> forward_logits(VisionModelImpl& model, const torch::Tensor& images, int64_t steps) {
  std::vector<torch::Tensor> logits;
  {
    AutocastGuard autocast(model.precision());
    logits = model.forward(images, steps);
  }
  for (auto& l : logits) l = l.to(torch::kFloat);  // no-op for fp32
  return logits;
}

std::vector<torch::Tensor> infer(VisionModelImpl& model, const torch::Tensor& images, int64_t steps) {
  EvalModeGuard eval(model);
  c10::InferenceMode guard;
  return forward_logits(model, images, steps);
}

namespace {

// fp32 time / bf16 time of inference on 64 constant images (no draw from the global RNG, so
// `auto` leaves a run's random stream alone): one warm-up, then the best of three.
double measure_bf16_speedup(VisionModelImpl& model, const std::string& memory_format, int64_t channels,
                            int64_t image_size) {
  auto device = model.parameters().empty() ? torch::kCPU : model.parameters()[0].device();
  auto best_seconds = [&](Precision p) {
    model.use_precision(p);
    apply_memory_format(model, memory_format);
    torch::Tensor x = model.inputs(torch::ones({64, channels, image_size, image_size}, torch::TensorOptions().device(device)));
    infer(model, x, model.default_steps());
    double best = 1e300;
    for (int i = 0; i < 3; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      infer(model, x, model.default_steps());
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  };
  double fp32 = best_seconds(Precision::FP32), bf16 = best_seconds(Precision::BF16);
  return fp32 / bf16;
}

}  // namespace

PrecisionChoice choose_precision(VisionModelImpl& model, const std::string& setting, const std::string& memory_format,
                                 int64_t channels, int64_t image_size, const std::set<std::string>& flags) {
  const bool on_cpu = model.parameters().empty() || model.parameters()[0].device().is_cpu();
  if (!on_cpu && setting == "bf16")
    throw InputError("precision: bf16 is implemented for the CPU (autocast); this model runs on " +
                     model.parameters()[0].device().str() + ": use precision: fp32 (ventral eval and bench: --precision fp32)");
  PrecisionChoice choice = resolve_precision(on_cpu ? setting : "fp32", on_cpu ? flags : std::set<std::string>{},
                                             [&] { return measure_bf16_speedup(model, memory_format, channels, image_size); });
  model.use_precision(choice.precision);
  apply_memory_format(model, memory_format);
  return choice;
}

}  // namespace ventral
