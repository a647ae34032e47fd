#include "inference/predict.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <stdexcept>

#include "core/progress.hpp"
#include "core/rng.hpp"
#include "inference/infer.hpp"

namespace ventral {

std::vector<int64_t> readout_steps(const VisionModelImpl& model, int64_t steps) {
  if (!model.unrolls()) return {model.default_steps()};
  if (!model.reads_out_every_step()) return {steps};
  std::vector<int64_t> s;
  for (int64_t t = 1; t <= steps; ++t) s.push_back(t);
  return s;
}

std::vector<int64_t> evaluated_steps(const VisionModelImpl& model, const std::vector<int64_t>& wanted) {
  return model.unrolls() ? wanted : std::vector<int64_t>{model.default_steps()};
}

size_t headline_index(const std::vector<int64_t>& steps, int64_t trained_steps) {
  auto it = std::find(steps.begin(), steps.end(), trained_steps);
  return it != steps.end() ? static_cast<size_t>(it - steps.begin()) : steps.size() - 1;
}

double Predictions::accuracy(size_t k) const {
  int64_t n = 0;
  for (size_t i = 0; i < size(); ++i) n += correct(i, k);
  return size() ? static_cast<double>(n) / static_cast<double>(size()) : 0.0;
}

Predictions Predictions::at_step(size_t k) const {
  const size_t S = steps.size();
  Predictions one;
  one.steps = {steps.at(k)};
  one.labels = labels;
  one.index = index;
  one.loss_sum = {loss_sum.at(k)};
  for (size_t i = 0; i < size(); ++i) {
    one.pred.push_back(pred[i * S + k]);
    one.conf.push_back(conf[i * S + k]);
  }
  return one;
}

torch::Tensor mask_images(const MaskSchedule& schedule, const torch::Tensor& images, const std::vector<int64_t>& indices) {
  if (schedule.mask == "blank") return torch::zeros_like(images);
  if (schedule.mask != "noise") throw std::invalid_argument("mask must be blank or noise, got " + schedule.mask);
  const int64_t n = images.size(0), per_image = images.numel() / std::max<int64_t>(1, n);
  torch::Tensor noise = torch::empty({n, images.size(1), images.size(2), images.size(3)}, torch::kFloat32);
  float* out = noise.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    Rng rng({schedule.seed, stream::kMaskNoise, static_cast<uint64_t>(indices.at(static_cast<size_t>(i)))});
    for (int64_t j = 0; j < per_image; ++j) out[i * per_image + j] = static_cast<float>(rng.normal());
  }
  return noise.to(images.device()).contiguous(images.suggest_memory_format());
}

namespace {
// Removes `rows` (ascending) from p, recording the remaining rows' positions in p.index.
void leave_out(Predictions& p, const std::vector<size_t>& rows) {
  const size_t S = p.steps.size();
  Predictions kept;
  kept.steps = p.steps;
  kept.loss_sum = p.loss_sum;
  auto next = rows.begin();
  for (size_t i = 0; i < p.size(); ++i) {
    if (next != rows.end() && *next == i) {
      ++next;
      continue;
    }
    kept.labels.push_back(p.labels[i]);
    kept.index.push_back(static_cast<int64_t>(i));
    kept.pred.insert(kept.pred.end(), p.pred.begin() + i * S, p.pred.begin() + (i + 1) * S);
    kept.conf.insert(kept.conf.end(), p.conf.begin() + i * S, p.conf.begin() + (i + 1) * S);
  }
  p = std::move(kept);
}

// Clears the model's presentation schedule however the prediction loop ends.
struct StepInputsGuard {
  VisionModelImpl& model;
  ~StepInputsGuard() { model.set_step_inputs({}); }
};
}  // namespace

Predictions predict(VisionModelImpl& model, BatchLoader& loader, const std::vector<int64_t>& wanted,
                    const std::string& label, const MaskSchedule* masking) {
  if (masking && !model.takes_input_every_step())
    throw std::invalid_argument("predict: a presentation schedule needs a model that takes input at every step");
  StepInputsGuard clear_schedule{model};
  Predictions p;
  p.steps = evaluated_steps(model, wanted);
  const bool one_pass = model.unrolls() && model.reads_out_every_step();
  const size_t S = p.steps.size(), N = static_cast<size_t>(loader.images_per_epoch());
  p.pred.assign(N * S, -1);
  p.conf.assign(N * S, 0.f);
  p.labels.reserve(N);
  p.loss_sum.assign(S, 0.0);
  torch::Device device = model.parameters().front().device();
  EvalModeGuard eval(model);
  std::unique_ptr<Progress> progress;
  if (!label.empty()) progress = std::make_unique<Progress>(label, static_cast<int64_t>(N), "img", 20);
  c10::InferenceMode guard;
  loader.start_epoch(0);
  std::vector<size_t> left_out;  // rows of stand-ins, ascending
  while (auto batch = loader.next()) {
    torch::Tensor x = model.inputs(batch->images.to(device)), labels = batch->labels;
    const size_t row0 = p.labels.size();
    if (!batch->stand_ins.empty()) {  // images that do not decode: in no count, no loss
      labels = labels.clone();
      for (int64_t k : batch->stand_ins) {
        labels[k] = kNoLabel;
        left_out.push_back(row0 + static_cast<size_t>(k));
      }
    }
    labels = labels.to(device);
    if (masking) {
      std::vector<torch::Tensor> shown(static_cast<size_t>(std::max<int64_t>(1, masking->present)), x);
      shown.push_back(model.inputs(mask_images(*masking, x, batch->indices)));
      model.set_step_inputs(std::move(shown));
    }
    std::vector<torch::Tensor> per_step(S);
    if (one_pass) {
      auto logits = infer(model, x, p.steps.back());
      for (size_t k = 0; k < S; ++k) per_step[k] = logits[p.steps[k] - 1];
    } else {
      for (size_t k = 0; k < S; ++k) per_step[k] = infer(model, x, p.steps[k]).back();
    }
    auto truth = batch->labels.contiguous();
    p.labels.insert(p.labels.end(), truth.data_ptr<int64_t>(), truth.data_ptr<int64_t>() + truth.numel());
    for (size_t k = 0; k < S; ++k) {
      torch::Tensor logits = per_step[k].to(torch::kFloat32);
      // The argmax of NaN logits is class 0: a number, but a meaningless one, so none is reported.
      if (!torch::isfinite(logits).all().item<bool>())
        throw NonFiniteOutputs(
            "the model's outputs are NaN or infinite at step " + std::to_string(p.steps[k]) +
            (p.steps[k] > model.default_steps()
                 ? " (it was trained for " + std::to_string(model.default_steps()) +
                       " steps: its activity grows without bound when unrolled that far; evaluate fewer --steps)"
                 : " (its weights overflow float32: imported weights, or a run that diverged)") +
            "; no accuracy is reported");
      p.loss_sum[k] += torch::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum).item<double>();
      // The prediction is the argmax of the logits (as accuracy has always been counted), its
      // confidence the softmax probability of that class.
      torch::Tensor pred_t = logits.argmax(1);
      torch::Tensor conf_t = torch::softmax(logits, 1).gather(1, pred_t.unsqueeze(1)).squeeze(1);
      auto conf = conf_t.cpu().contiguous();
      auto pred = pred_t.cpu().contiguous();
      auto c = conf.accessor<float, 1>();
      auto q = pred.accessor<int64_t, 1>();
      for (int64_t b = 0; b < q.size(0); ++b) {
        p.pred[(row0 + b) * S + k] = q[b];
        p.conf[(row0 + b) * S + k] = c[b];
      }
    }
    if (progress) progress->update(x.size(0));
  }
  if (progress) progress->finish();
  if (!left_out.empty()) leave_out(p, left_out);
  return p;
}

Predictions predict(VisionModelImpl& model, const Dataset& images, const std::vector<int64_t>& wanted,
                    const LoaderOptions& options, const std::string& label, const MaskSchedule* masking) {
  LoaderOptions in_order = options;
  in_order.shuffle = false;
  in_order.augment = false;
  in_order.drop_last = false;
  BatchLoader loader(images, {}, in_order);
  return predict(model, loader, wanted, label, masking);
}

}  // namespace ventral
