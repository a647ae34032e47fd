#pragma once
/// The one training pipeline every model goes through.
#include <string>

#include "core/config.hpp"
#include "inference/evaluate.hpp"

namespace ventral {

/// Exit statuses of an interrupted or diverged run (the CLI returns them).
constexpr int kExitDiverged = 3;  // not 1, which means an internal failure
constexpr int kExitSigint = 130;
constexpr int kExitSigterm = 143;
constexpr int kExitStoppedAfterSteps = 75;

struct TrainReport {
  bool finished = false;   ///< all epochs done and tested
  int exit_status = 0;     ///< 0, or one of the kExit* codes
  std::string message;     ///< one line for the user when not finished
  StepMetrics test;        ///< test-set metrics at every step (finished runs)
  double train_seconds = 0;
  bool lead = true;        ///< rank 0 of a multi-process run (or the only process): the one that reports
};

/// What the training loop reads from the config (train.* and a few top-level keys), typed once.
/// The optimizer (make_optimizer), the schedule (LrSchedule::from_config), the data
/// (load_experiment_data, loader_options) and the model (model_options) read their own keys.
struct TrainOptions {
  int64_t epochs = 10, batch_size = 128, log_every = 50, stop_after_steps = 0;
  std::string step_loss = "mean";     ///< last | mean | weights
  std::vector<double> step_weights;   ///< step_loss = weights
  double label_smoothing = 0, grad_clip = 0;
  std::string memory_format = "auto";
  uint64_t seed = 0;
  static TrainOptions from_config(const Config& cfg);
};

/// Trains as `cfg` says into `run_dir` (the RunDir layout: config.yaml, classes.txt,
/// input.json, log.jsonl, metrics.csv, test.json, checkpoints/last.pt, checkpoints/best.pt). With `resume`, continues from
/// checkpoints/last.pt and ends with exactly the weights an uninterrupted run would have.
/// SIGINT/SIGTERM finish the current step, write last.pt and return; a NaN/Inf loss stops
/// the run without overwriting the last good checkpoint.
TrainReport train(const Config& cfg, const std::string& run_dir, bool resume);

/// Everything `train` refuses in `cfg` before it reads any data: model options, the training
/// perturbation, the schedule, keys without effect, step weights, preprocessing, the dataset
/// SPEC's form. `ventral config` and `compare --plan` check with it.
void check_training_config(const Config& cfg);

/// Where a run's saved config (`saved`, its config.yaml) and `wanted` would train differently,
/// as "key: saved -> wanted" (Config::differences). Not counted: keys that only change speed
/// (KeySpec::affects_training), a normalisation `wanted` leaves to be measured (data.mean/std
/// empty: the run saved what it measured) and `precision: auto` (the run saved what it chose).
std::vector<std::string> training_differences(const Config& saved, const Config& wanted);

/// Loss over a model's per-step logits: "last", "mean" or explicit per-step "weights"
/// (Σ_t w_t · CE_t, weights as given).
torch::Tensor step_loss(const std::vector<torch::Tensor>& logits, const torch::Tensor& labels, const std::string& mode,
                        const std::vector<double>& weights, double label_smoothing);

}  // namespace ventral
