#include "inference/evaluate.hpp"

namespace ventral {

StepMetrics evaluate(VisionModelImpl& model, BatchLoader& loader, int64_t steps, const std::string& progress_label) {
  Predictions p = predict(model, loader, readout_steps(model, steps), progress_label);
  StepMetrics m;
  m.steps = p.steps;
  m.n = static_cast<int64_t>(p.size());
  for (size_t k = 0; k < p.steps.size(); ++k) {
    m.accuracy.push_back(p.accuracy(k));
    m.loss.push_back(m.n ? p.loss_sum[k] / static_cast<double>(m.n) : 0.0);
  }
  return m;
}

}  // namespace ventral
