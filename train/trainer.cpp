#include "train/trainer.hpp"

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "core/io.hpp"
#include "core/progress.hpp"
#include "core/text.hpp"
#include "core/threads.hpp"
#include "datasets/experiment.hpp"
#include "models/registry.hpp"
#include "train/checkpoint.hpp"
#include "train/schedule.hpp"

namespace ventral {

namespace fs = std::filesystem;

namespace {

volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_signal(int sig) { g_signal = sig; }

/// Installs SIGINT/SIGTERM handlers for the lifetime of the object.
class SignalGuard {
 public:
  SignalGuard() {
    g_signal = 0;
    old_int_ = std::signal(SIGINT, on_signal);
    old_term_ = std::signal(SIGTERM, on_signal);
  }
  ~SignalGuard() {
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
  }

 private:
  void (*old_int_)(int);
  void (*old_term_)(int);
};

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Config& cfg, VisionModelImpl& model) {
  // Batch-norm and bias parameters (1-D) are exempt from weight decay unless asked otherwise.
  std::vector<torch::Tensor> decay, no_decay;
  bool decay_all = cfg.get_bool("train.decay_bn_and_bias");
  for (const auto& p : model.parameters()) (decay_all || p.dim() > 1 ? decay : no_decay).push_back(p);
  std::string kind = cfg.get_string("train.optimizer");
  double lr = cfg.get_float("train.lr"), wd = cfg.get_float("train.weight_decay");
  auto groups = [&](auto make_options) {
    std::vector<torch::optim::OptimizerParamGroup> g;
    g.emplace_back(decay, make_options(wd));
    if (!no_decay.empty()) g.emplace_back(no_decay, make_options(0.0));
    return g;
  };
  if (kind == "sgd") {
    double momentum = cfg.get_float("train.momentum");
    bool nesterov = cfg.get_bool("train.nesterov") && momentum > 0;
    return std::make_unique<torch::optim::SGD>(groups([&](double w) {
      return std::make_unique<torch::optim::SGDOptions>(
          torch::optim::SGDOptions(lr).momentum(momentum).nesterov(nesterov).weight_decay(w));
    }), torch::optim::SGDOptions(lr));
  }
  auto betas = cfg.get_floats("train.betas");
  require(betas.size() == 2, cfg.source() + ": key 'train.betas' needs two values, got " + std::to_string(betas.size()));
  if (kind == "adam")
    return std::make_unique<torch::optim::Adam>(groups([&](double w) {
      return std::make_unique<torch::optim::AdamOptions>(
          torch::optim::AdamOptions(lr).betas({betas[0], betas[1]}).weight_decay(w));
    }), torch::optim::AdamOptions(lr));
  return std::make_unique<torch::optim::AdamW>(groups([&](double w) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(lr).betas({betas[0], betas[1]}).weight_decay(w));
  }), torch::optim::AdamWOptions(lr));
}

std::string csv_header(const std::vector<int64_t>& steps) {
  std::string h = "epoch,lr,train_loss,train_acc,val_loss";
  for (int64_t t : steps) h += ",val_acc_step" + std::to_string(t);
  return h + ",seconds\n";
}

void append_jsonl(const std::string& path, const nlohmann::json& j) {
  std::ofstream out(path, std::ios::app);
  out << j.dump() << "\n";
}

}  // namespace

torch::Device resolve_device(const std::string& name) {
  if (name == "cuda") {
    require(torch::cuda::is_available(), "device: cuda was requested but this build of libtorch has no usable GPU");
    return torch::kCUDA;
  }
  if (name == "auto" && torch::cuda::is_available()) return torch::kCUDA;
  return torch::kCPU;
}

torch::Tensor step_loss(const std::vector<torch::Tensor>& logits, const torch::Tensor& labels, const std::string& mode,
                        const std::vector<double>& weights, double label_smoothing) {
  auto ce = [&](const torch::Tensor& l) {
    return torch::cross_entropy_loss(l, labels, {}, at::Reduction::Mean, -100, label_smoothing);
  };
  if (mode == "last" || logits.size() == 1) return ce(logits.back());
  if (mode == "mean") {
    torch::Tensor sum = ce(logits[0]);
    for (size_t t = 1; t < logits.size(); ++t) sum = sum + ce(logits[t]);
    return sum / static_cast<double>(logits.size());
  }
  require(weights.size() == logits.size(), "train.step_weights has " + std::to_string(weights.size()) +
                                               " values but the model reads out at " +
                                               std::to_string(logits.size()) + " steps");
  torch::Tensor sum = ce(logits[0]) * weights[0];
  for (size_t t = 1; t < logits.size(); ++t) sum = sum + ce(logits[t]) * weights[t];
  return sum;
}

TrainReport train(const Config& cfg_in, const std::string& run_dir, bool resume) {
  Config cfg = cfg_in;
  int64_t threads = configure_threads(cfg.get_int_or_auto("threads"));
  torch::Device device = resolve_device(cfg.get_string("device"));
  const std::string ckpt_dir = (fs::path(run_dir) / "checkpoints").string();
  const std::string last_path = (fs::path(ckpt_dir) / "last.pt").string();
  const std::string best_path = (fs::path(ckpt_dir) / "best.pt").string();
  const std::string log_path = (fs::path(run_dir) / "log.jsonl").string();
  if (!resume && fs::exists(last_path))
    throw InputError(run_dir + " already holds a run (checkpoints/last.pt): add --resume to continue it or choose another --run-dir");
  if (resume && !fs::exists(last_path))
    throw InputError(run_dir + ": nothing to resume (no checkpoints/last.pt)");

  torch::manual_seed(static_cast<uint64_t>(cfg.get_int("seed")));
  ExperimentData data = load_experiment_data(cfg);
  // Record the normalisation actually used, so evaluation reproduces it exactly.
  auto list = [](const std::vector<double>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + format_number("%.17g", v[i]);
    return s + "]";
  };
  if (!data.mean.empty()) {
    cfg.set("data.mean=" + list(data.mean), "normalisation");
    cfg.set("data.std=" + list(data.std), "normalisation");
  }

  ModelOptions mo = model_options(cfg, data.train.channels, static_cast<int64_t>(data.train.classes.size()),
                                  data.train.height);
  ModelPtr model = create_model(cfg.get_string("model.name"), mo);
  model->to(device);
  apply_memory_format(*model, cfg.get_string("memory_format"));
  auto optimizer = make_optimizer(cfg, *model);
  const int64_t steps = model->default_steps();

  BatchLoader train_loader(data.train, data.split.train, loader_options(cfg, data, true));
  BatchLoader val_loader(data.train, data.split.val, loader_options(cfg, data, false));
  BatchLoader test_loader(data.test, {}, loader_options(cfg, data, false));
  const int64_t per_epoch = train_loader.batches_per_epoch();
  require(per_epoch > 0, cfg.source() + ": train.batch_size " + std::to_string(cfg.get_int("train.batch_size")) +
                             " exceeds the " + std::to_string(train_loader.size()) + " training images");
  LrSchedule schedule = LrSchedule::from_config(cfg, per_epoch);
  const int64_t epochs = cfg.get_int("train.epochs");
  const std::vector<int64_t> val_steps = readout_steps(*model, steps);

  TrainState state;
  fs::create_directories(ckpt_dir);
  if (resume) {
    state = load_checkpoint(last_path, *model, optimizer.get());
    apply_memory_format(*model, cfg.get_string("memory_format"));  // the load adopted the saved layout
    append_jsonl(log_path, {{"event", "resume"}, {"epoch", state.epoch}, {"global_step", state.global_step}});
  } else {
    state.metrics_csv = csv_header(val_steps);
    write_file_atomic(log_path, "");
  }
  cfg.save((fs::path(run_dir) / "config.yaml").string());
  std::string classes;
  for (const auto& c : data.train.classes) classes += c + "\n";
  write_file_atomic((fs::path(run_dir) / "classes.txt").string(), classes);
  std::fprintf(stderr, "train: %s on %s (%lld images, %lld per epoch), %lld parameters, %lld step(s), %lld threads, %s\n",
               cfg.get_string("model.name").c_str(), data.train.name.c_str(), (long long)train_loader.size(),
               (long long)per_epoch, (long long)count_parameters(*model), (long long)steps, (long long)threads,
               device.str().c_str());

  const std::string loss_mode = cfg.get_string("train.step_loss");
  const std::vector<double> loss_weights = cfg.get_floats("train.step_weights");
  const double smoothing = cfg.get_float("train.label_smoothing"), clip = cfg.get_float("train.grad_clip");
  const int64_t log_every = cfg.get_int("train.log_every"), stop_after = cfg.get_int("train.stop_after_steps");
  const int64_t steps_at_start = state.global_step;
  SignalGuard signals;
  TrainReport report;

  // Writes last.pt (unless `saved` says it is already on disk) and reports where it is.
  auto interrupt = [&](const std::string& why, bool saved) {
    if (!saved) save_checkpoint(last_path, *model, optimizer.get(), state);
    report.exit_status = g_signal == SIGTERM ? kExitSigterm : g_signal ? kExitSigint : kExitStoppedAfterSteps;
    report.message = why + " at epoch " + std::to_string(state.epoch + 1) + ", step " +
                     std::to_string(state.step_in_epoch) + ": saved " + last_path +
                     " (continue with: ventral train --run-dir " + run_dir + " --resume)";
    report.train_seconds = state.train_seconds;
    return report;
  };
  auto signal_name = [] { return std::string(g_signal == SIGTERM ? "terminated (SIGTERM)" : "interrupted (SIGINT)"); };

  model->train();
  for (; state.epoch < epochs; ++state.epoch, state.step_in_epoch = 0) {
    train_loader.start_epoch(state.epoch, state.step_in_epoch);
    Progress progress("epoch " + std::to_string(state.epoch + 1) + "/" + std::to_string(epochs),
                      (per_epoch - state.step_in_epoch) * cfg.get_int("train.batch_size"), "img", log_every);
    double loss_sum = 0, lr = 0;
    int64_t correct = 0, seen = 0;
    auto t0 = std::chrono::steady_clock::now();
    while (auto batch = train_loader.next()) {
      lr = schedule.at(state.global_step);
      for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
      torch::Tensor images = model->inputs(batch->images.to(device)), labels = batch->labels.to(device);
      auto logits = model->forward(images, steps);
      torch::Tensor loss = step_loss(logits, labels, loss_mode, loss_weights, smoothing);
      double loss_value = loss.item<double>();
      if (!std::isfinite(loss_value)) {
        report.exit_status = kExitDiverged;
        report.message = "loss became " + std::string(std::isnan(loss_value) ? "NaN" : "Inf") + " at epoch " +
                         std::to_string(state.epoch + 1) + ", step " + std::to_string(state.step_in_epoch + 1) +
                         " (global step " + std::to_string(state.global_step + 1) + "); the last good checkpoint is " +
                         (fs::exists(last_path) ? last_path : std::string("(none yet)")) +
                         "; lower train.lr or set train.grad_clip";
        return report;
      }
      optimizer->zero_grad();
      loss.backward();
      if (clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), clip);
      optimizer->step();
      ++state.global_step;
      ++state.step_in_epoch;
      int64_t n = labels.size(0);
      loss_sum += loss_value * n;
      correct += logits.back().argmax(1).eq(labels).sum().item<int64_t>();
      seen += n;
      progress.update(n, "loss " + format_number("%.4f", loss_sum / seen) + " acc " + format_number("%.2f%%", 100.0 * correct / seen));
      if (state.global_step % log_every == 0)
        append_jsonl(log_path, {{"event", "step"}, {"epoch", state.epoch + 1}, {"step", state.step_in_epoch},
                                {"global_step", state.global_step}, {"lr", lr}, {"loss", loss_sum / seen},
                                {"acc", double(correct) / seen}, {"images_per_s", seen / progress.elapsed_seconds()}});
      if (g_signal || (stop_after > 0 && state.global_step - steps_at_start >= stop_after)) {
        state.train_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (g_signal) return interrupt(signal_name(), false);
        return interrupt("stopped after train.stop_after_steps=" + std::to_string(stop_after), false);
      }
    }
    double epoch_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.train_seconds += epoch_seconds;
    progress.finish("loss " + format_number("%.4f", seen ? loss_sum / seen : 0) + " acc " +
                    format_number("%.2f%%", seen ? 100.0 * correct / seen : 0));

    StepMetrics val = val_loader.size() ? evaluate(*model, val_loader, steps, device) : StepMetrics{};
    double val_acc = val.accuracy.empty() ? double(correct) / std::max<int64_t>(1, seen) : val.accuracy.back();
    std::string row = std::to_string(state.epoch + 1) + "," + format_number("%.6g", lr) + "," +
                      format_number("%.6f", seen ? loss_sum / seen : 0) + "," + format_number("%.6f", seen ? double(correct) / seen : 0) +
                      "," + format_number("%.6f", val.loss.empty() ? NAN : val.loss.back());
    for (size_t t = 0; t < val_steps.size(); ++t) row += "," + format_number("%.6f", t < val.accuracy.size() ? val.accuracy[t] : NAN);
    row += "," + format_number("%.2f", epoch_seconds) + "\n";
    state.metrics_csv += row;
    std::string accs;
    for (double a : val.accuracy) accs += format_number(" %.2f", 100 * a);
    std::fprintf(stderr, "epoch %lld/%lld: val acc (%%) by step:%s\n", (long long)state.epoch + 1, (long long)epochs,
                 accs.c_str());
    append_jsonl(log_path, {{"event", "epoch"}, {"epoch", state.epoch + 1}, {"lr", lr},
                            {"train_loss", seen ? loss_sum / seen : 0}, {"train_acc", seen ? double(correct) / seen : 0},
                            {"val_steps", val.steps}, {"val_acc", val.accuracy}, {"val_loss", val.loss},
                            {"seconds", epoch_seconds}});
    TrainState next = state;
    ++next.epoch;
    next.step_in_epoch = 0;
    if (val_acc > state.best_val) {
      next.best_val = val_acc;
      save_checkpoint(best_path, *model, optimizer.get(), next);
    }
    save_checkpoint(last_path, *model, optimizer.get(), next);
    write_file_atomic((fs::path(run_dir) / "metrics.csv").string(), state.metrics_csv);
    state.best_val = next.best_val;
    if (g_signal) {
      state = next;
      return interrupt(signal_name(), true);
    }
  }

  report.test = evaluate(*model, test_loader, steps, device, "test");
  report.finished = true;
  report.train_seconds = state.train_seconds;
  nlohmann::json test = {{"model", cfg.get_string("model.name")}, {"dataset", data.test.name},
                         {"n", report.test.n}, {"steps", report.test.steps}, {"accuracy", report.test.accuracy},
                         {"loss", report.test.loss}, {"params", count_parameters(*model)},
                         {"train_seconds", state.train_seconds}, {"epochs", epochs}};
  write_file_atomic((fs::path(run_dir) / "test.json").string(), test.dump(2) + "\n");
  append_jsonl(log_path, {{"event", "test"}, {"steps", report.test.steps}, {"accuracy", report.test.accuracy}});
  return report;
}

}  // namespace ventral
