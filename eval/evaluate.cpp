#include "eval/evaluate.hpp"

#include "core/progress.hpp"
#include "inference/infer.hpp"

namespace ventral {

std::vector<int64_t> readout_steps(const VisionModelImpl& model, int64_t steps) {
  if (!model.recurrent()) return {1};
  if (!model.reads_out_every_step()) return {steps};
  std::vector<int64_t> s;
  for (int64_t t = 1; t <= steps; ++t) s.push_back(t);
  return s;
}

StepMetrics evaluate(VisionModelImpl& model, BatchLoader& loader, int64_t steps, const torch::Device& device,
                     const std::string& progress_label) {
  bool was_training = model.is_training();
  model.eval();
  StepMetrics m;
  m.steps = readout_steps(model, steps);
  std::vector<int64_t> correct(m.steps.size(), 0);
  std::vector<double> loss_sum(m.steps.size(), 0);
  std::unique_ptr<Progress> progress;
  if (!progress_label.empty()) progress = std::make_unique<Progress>(progress_label, loader.size(), "img", 20);
  {
    c10::InferenceMode guard;
    loader.start_epoch(0);
    while (auto batch = loader.next()) {
      torch::Tensor images = model.inputs(batch->images.to(device)), labels = batch->labels.to(device);
      auto logits = infer(model, images, steps);
      for (size_t t = 0; t < logits.size() && t < m.steps.size(); ++t) {
        correct[t] += logits[t].argmax(1).eq(labels).sum().item<int64_t>();
        loss_sum[t] += torch::cross_entropy_loss(logits[t], labels, {}, at::Reduction::Sum).item<double>();
      }
      m.n += labels.size(0);
      if (progress) progress->update(labels.size(0));
    }
  }
  if (progress) progress->finish();
  for (size_t t = 0; t < m.steps.size(); ++t) {
    m.accuracy.push_back(m.n ? static_cast<double>(correct[t]) / m.n : 0.0);
    m.loss.push_back(m.n ? loss_sum[t] / m.n : 0.0);
  }
  model.train(was_training);
  return m;
}

}  // namespace ventral
