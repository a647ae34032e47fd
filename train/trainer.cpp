#include "train/trainer.hpp"

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "core/device.hpp"
#include "core/error.hpp"
#include "core/io.hpp"
#include "core/progress.hpp"
#include "core/text.hpp"
#include "core/threads.hpp"
#include "datasets/experiment.hpp"
#include "inference/checkpoint.hpp"
#include "inference/infer.hpp"
#include "inference/model_json.hpp"
#include "inference/run_dir.hpp"
#include "models/layers.hpp"
#include "models/registry.hpp"
#include "train/distributed.hpp"
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

// Adam's and AdamW's two betas (ventral config checks them too, before any data is read).
std::vector<double> adam_betas(const Config& cfg) {
  auto betas = cfg.get_floats("train.betas");
  require(betas.size() == 2, cfg.origin("train.betas") + ": key 'train.betas' needs two values, got " + std::to_string(betas.size()));
  return betas;
}

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
    // momentum 0 with Nesterov is refused for new runs (check_keys_take_effect); a run begun
    // before that resumes as plain SGD, as it trained.
    bool nesterov = cfg.get_bool("train.nesterov") && momentum > 0;
    return std::make_unique<torch::optim::SGD>(groups([&](double w) {
      return std::make_unique<torch::optim::SGDOptions>(
          torch::optim::SGDOptions(lr).momentum(momentum).nesterov(nesterov).weight_decay(w));
    }), torch::optim::SGDOptions(lr));
  }
  const auto betas = adam_betas(cfg);
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

/// The name of the first parameter or buffer holding a NaN or an infinity ("" when all are finite).
std::string first_non_finite(VisionModelImpl& model) {
  for (const auto& p : model.named_parameters())
    if (!torch::isfinite(p.value()).all().item<bool>()) return "parameter " + p.key();
  for (const auto& b : model.named_buffers())
    if (b.value().is_floating_point() && !torch::isfinite(b.value()).all().item<bool>()) return "buffer " + b.key();
  return "";
}

std::string csv_header(const std::vector<int64_t>& steps) {
  std::string h = "epoch,lr,train_loss,train_acc,val_loss";
  for (int64_t t : steps) h += ",val_acc_step" + std::to_string(t);
  return h + ",seconds\n";
}

// One JSON line appended to log.jsonl; a write that fails (disk full, file gone) is an error,
// not a silently shorter log.
void append_jsonl(const std::string& path, const nlohmann::json& j) { append_file(path, j.dump() + "\n"); }

std::string signal_name(int sig) { return sig == SIGTERM ? "terminated (SIGTERM)" : "interrupted (SIGINT)"; }

/// The signal a stop request names: SIGTERM over SIGINT, 0 for none.
int requested_signal(double sigint_requests, double sigterm_requests) {
  return sigterm_requests > 0 ? SIGTERM : sigint_requests > 0 ? SIGINT : 0;
}

}  // namespace

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

std::vector<std::string> training_differences(const Config& saved_config, const Config& wanted_config) {
  // A relative data.dataset (runs before they recorded it absolute) is the folder it names from here.
  Config saved = saved_config, wanted = wanted_config;
  make_dataset_absolute(saved);
  make_dataset_absolute(wanted);
  std::vector<std::string> ignore = keys_not_affecting_training();
  for (const char* key : {"data.mean", "data.std"})
    if (wanted.get_floats(key).empty()) ignore.push_back(key);
  if (wanted.get_string("precision") == "auto") ignore.push_back("precision");
  // Without a training perturbation its share is idle (runs before it was refused there kept one).
  if (saved.get_string("data.augment.perturb").empty() && wanted.get_string("data.augment.perturb").empty())
    ignore.push_back("data.augment.perturb_fraction");
  return saved.differences(wanted, ignore);
}

namespace {
// One weight per read-out step (train.step_loss: weights).
void check_step_weights(const Config& cfg, VisionModelImpl& model) {
  if (cfg.get_string("train.step_loss") != "weights") return;
  const std::vector<double> weights = cfg.get_floats("train.step_weights");
  const size_t readouts = readout_steps(model, model.default_steps()).size();
  if (readouts == 1)
    throw InputError(cfg.origin("train.step_loss") + ": train.step_loss is 'weights' but " + cfg.get_string("model.name") +
                     " reads out once (one step): the weights would be ignored; remove train.step_weights and use "
                     "train.step_loss: last");
  if (weights.size() != readouts)
    throw InputError(cfg.origin("train.step_weights") + ": train.step_weights has " + std::to_string(weights.size()) +
                     " values but " + cfg.get_string("model.name") + " reads out at " + std::to_string(readouts) +
                     " steps (model.steps); give one weight per step");
}
}  // namespace

void check_training_config(const Config& cfg) {
  check_model_options(cfg);
  training_perturbation(cfg);
  LrSchedule::from_config(cfg, 1);
  check_keys_take_effect(cfg);
  TrainOptions::from_config(cfg);
  const Preprocessing pre = preprocessing(cfg);
  check_dataset_spec(cfg.get_string("data.dataset"));
  // A built-in dataset's channels are known before it is read: `ventral config` refuses a wrong
  // data.mean or data.std then too (train checks every dataset once it has the images).
  const std::string dataset = cfg.get_string("data.dataset"), kind = dataset.substr(0, dataset.find(':'));
  if (const int64_t stored = kind == "fashion-mnist" || kind == "mnist" || kind == "synthetic" ? 1 : kind == "cifar10" ? 3 : 0;
      pre.load.channels == 0 && stored != 0)
    check_mean_std(cfg, pre.mean, pre.std, stored, kind + (stored == 1 ? " is gray" : " is RGB"), true);
  // What train checks once it has the data, where it needs none.
  if (cfg.get_string("train.optimizer") != "sgd") adam_betas(cfg);
  crop_scale(cfg);
  const int64_t side = cfg.get_int("data.image_size") > 0 ? cfg.get_int("data.image_size") : 32;
  check_step_weights(cfg, *create_model(cfg.get_string("model.name"), model_options(cfg, 1, 10, side)));
}

TrainOptions TrainOptions::from_config(const Config& cfg) {
  TrainOptions o;
  o.epochs = cfg.get_int("train.epochs");
  o.batch_size = cfg.get_int("train.batch_size");
  o.log_every = cfg.get_int("train.log_every");
  o.stop_after_steps = cfg.get_int("train.stop_after_steps");
  o.step_loss = cfg.get_string("train.step_loss");
  o.step_weights = cfg.get_floats("train.step_weights");
  double weight_sum = 0;
  for (double w : o.step_weights) weight_sum += w;
  if (o.step_loss == "weights" && o.step_weights.empty())
    throw InputError(cfg.origin("train.step_loss") + ": train.step_loss is 'weights' but train.step_weights is empty; give one weight per "
                     "step, e.g. train.step_weights=[0.1, 0.2, 0.3, 0.4]");
  if (o.step_loss == "weights" && !(weight_sum > 0))
    throw InputError(cfg.origin("train.step_weights") + ": train.step_weights must have a positive sum (all zero: nothing would be learned)");
  if (o.step_loss != "weights" && !o.step_weights.empty())
    throw InputError(cfg.origin("train.step_weights") + ": train.step_weights is set but train.step_loss is '" + o.step_loss +
                     "'; set train.step_loss: weights or remove the weights");
  o.label_smoothing = cfg.get_float("train.label_smoothing");
  o.grad_clip = cfg.get_float("train.grad_clip");
  o.memory_format = cfg.get_string("memory_format");
  o.seed = static_cast<uint64_t>(cfg.get_int("seed"));
  return o;
}

namespace {

/// One training run: set up from the config (or resumed from last.pt), then epoch after epoch
/// of optimizer steps, validation and checkpoints, then the test.
class Run {
 public:
  Run(const Config& cfg, const std::string& run_dir, bool resume)
      : cfg_(cfg), dir_(run_dir), resume_(resume), o_(TrainOptions::from_config(cfg)) {}

  ~Run() { nn::set_batch_norm_collective(nullptr); }

  TrainReport operator()() {
    setup();
    SignalGuard signals;
    model_->train();
    for (; state_.epoch < o_.epochs; ++state_.epoch, state_.step_in_epoch = 0) {
      if (!train_epoch()) return report_;
      if (!end_epoch()) return report_;
    }
    finish();
    return report_;
  }

 private:
  void setup();
  bool train_epoch();  // false: stopped (signal, train.stop_after_steps, divergence)
  bool end_epoch();    // false: a signal arrived during validation
  void finish();
  void stop(const std::string& why, bool saved);
  void check_new_run_dir() const;
  void join_process_group();
  void check_same_config_on_every_rank();
  void broadcast_model();
  StepMetrics evaluate_shards(BatchLoader& loader, const std::string& label);
  /// Whether any rank was signalled, decided from the reduced flags alone so every rank decides
  /// alike (a signal arriving after the vote waits for the next one); sets stop_signal_.
  bool signalled_anywhere();
  std::string position() const {
    return "epoch " + std::to_string(state_.epoch + 1) + ", step " + std::to_string(state_.step_in_epoch);
  }

  Config cfg_;
  RunDir dir_;
  bool resume_;
  TrainOptions o_;
  DistEnv env_;
  std::unique_ptr<ProcessGroup> group_;  ///< null: one process
  LocalCollective local_;                ///< train.sync_bn in one process: the same arithmetic
  bool lead_ = true;                     ///< rank 0: the one that writes and prints
  int stop_signal_ = 0;                  ///< the signal this run stops for (agreed by every rank)
  int64_t threads_ = 1;
  torch::Device device_ = torch::kCPU;
  ExperimentData data_;
  ModelPtr model_;
  int64_t steps_ = 1;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<BatchLoader> train_loader_, val_loader_, test_loader_, perturbed_test_loader_;
  LrSchedule schedule_;
  TrainState state_;
  int64_t steps_at_start_ = 0;
  // The epoch in progress.
  double loss_sum_ = 0, lr_ = 0, epoch_seconds_ = 0, comm_seconds_ = 0;
  int64_t correct_ = 0, seen_ = 0;
  TrainReport report_;
};

void Run::join_process_group() {
  env_ = read_dist_env();
  report_.lead = true;
  if (!env_.distributed()) return;
  const std::string backend = cfg_.get_string("train.distributed.backend");
  if (backend == "nccl" && !device_.is_cuda())
    throw InputError(cfg_.origin("train.distributed.backend") + ": train.distributed.backend is nccl, but the model runs on " + device_.str() +
                     " (NCCL needs CUDA tensors and a CUDA build of LibTorch); use gloo or auto");
  if (device_.is_cuda())
    throw InputError(cfg_.origin("device") + ": multi-process training runs on the CPU (Gloo) in this version; set device: cpu");
  check_global_batch(cfg_, env_.world_size, env_.source);
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(cfg_.get_float("train.distributed.timeout_s") * 1000));
  group_ = std::make_unique<ProcessGroup>(env_, timeout);
  lead_ = report_.lead = env_.rank == 0;
  Progress::silence(!lead_);
  check_same_config_on_every_rank();
}

// Ranks started with different configs would exchange messages of different sizes (Gloo aborts
// the process) or stop at different steps: every rank compares a hash of its config with rank
// 0's, all but the keys that may differ per process (threads, loader, timeout).
void Run::check_same_config_on_every_rank() {
  Config c = cfg_;
  for (const char* key : {"threads=auto", "data.loader_threads=auto", "data.prefetch=2", "train.distributed.timeout_s=60"})
    c.set(key, "hash");
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : c.dump()) hash = (hash ^ ch) * 1099511628211ull;
  std::vector<torch::Tensor> mine{torch::tensor({static_cast<int64_t>(hash)}, torch::kLong)};
  std::vector<torch::Tensor> lead{mine[0].clone()};
  group_->broadcast(lead, 0);
  const bool differs = !torch::equal(mine[0], lead[0]);
  std::vector<torch::Tensor> count{torch::tensor({differs ? 1.0 : 0.0})};
  group_->all_reduce_sum(count);
  if (const auto n = count[0][0].item<double>(); n > 0)
    throw InputError(differs ? "rank " + std::to_string(env_.rank) + " was started with another config than rank 0 (" +
                                   cfg_.source() + " and its overrides must be the same on every rank)"
                             : std::to_string(static_cast<int64_t>(n)) +
                                   " rank(s) were started with another config than rank 0; every rank must run the "
                                   "same config and overrides");
}

// Every rank starts from rank 0's weights and buffers (they are equal already, being drawn from
// the same seed; the broadcast makes it so whatever happened), as PyTorch's DDP does.
void Run::broadcast_model() {
  if (!group_) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> tensors;
  for (const auto& p : model_->parameters()) tensors.push_back(p.data());
  for (const auto& b : model_->buffers()) tensors.push_back(b);
  group_->broadcast(tensors, 0);
}

StepMetrics Run::evaluate_shards(BatchLoader& loader, const std::string& label) {
  StepMetrics local = evaluate(*model_, loader, steps_, label);
  return group_ ? combine_shards(local, *group_) : local;
}

bool Run::signalled_anywhere() {
  const int sig = g_signal;
  if (!group_) return (stop_signal_ = sig) != 0;
  std::vector<torch::Tensor> flags{torch::tensor({sig == SIGINT ? 1.0 : 0.0, sig == SIGTERM ? 1.0 : 0.0})};
  group_->all_reduce_sum(flags);
  return (stop_signal_ = requested_signal(flags[0][0].item<double>(), flags[0][1].item<double>())) != 0;
}

namespace {
// 64 random bits as hex: a run's identity (not its seed: two runs of one config differ in it).
std::string new_run_id() {
  std::random_device device;
  const uint64_t bits = (static_cast<uint64_t>(device()) << 32) ^ device() ^
                        static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(bits));
  return hex;
}
}  // namespace

void Run::setup() {
  device_ = resolve_device(cfg_.get_string("device"));
  join_process_group();
  {  // `auto` shares the cores among the processes of this machine
    std::optional<int64_t> threads = cfg_.get_int_or_auto("threads");
    if (!threads && env_.distributed()) threads = std::max<int64_t>(1, available_cores() / env_.local_world_size);
    threads_ = configure_threads(threads);
  }
  if (!resume_ && dir_.started())
    throw InputError(dir_.path() + " already holds a run (checkpoints/last.pt): add --resume to continue it or choose another --run-dir");
  if (resume_ && !dir_.started()) throw InputError(dir_.path() + ": nothing to resume (no checkpoints/last.pt)");
  // model.json holds the run's identity: without it another run's last.pt would be adopted.
  if (std::error_code ec; resume_ && !fs::exists(dir_.model_json(), ec))
    throw InputError(dir_.model_json() + ": missing, though the run has started (checkpoints/last.pt); it tells this "
                     "run's checkpoints from another's: restore it, or start a new --run-dir");
  if (!resume_) check_new_run_dir();
  if (group_) group_->barrier();  // every rank has checked the run directory before rank 0 writes to it

  check_model_options(cfg_);
  if (!resume_) check_keys_take_effect(cfg_);  // a run begun before this check resumes as it began
  torch::manual_seed(o_.seed);
  data_ = load_experiment_data(cfg_);
  {  // one class is no classification: every model would score 100% on it
    std::set<int64_t> seen;
    for (int64_t i : data_.split.train) seen.insert(data_.train.labels[i]);
    if (seen.size() < 2)
      throw InputError(cfg_.get_string("data.dataset") + ": the training split holds " + std::to_string(seen.size()) +
                       " class(es)" + (cfg_.get_int("data.max_train_images") > 0
                                            ? " (data.max_train_images " + std::to_string(cfg_.get_int("data.max_train_images")) +
                                                  " keeps only these images)"
                                            : "") +
                       "; training a classifier needs images of at least 2");
    // A class without a training image (an empty class folder) is an output the model never learns.
    std::vector<std::string> empty;
    for (size_t c = 0; c < data_.train.classes.size(); ++c)
      if (!seen.count(static_cast<int64_t>(c))) empty.push_back("'" + printable(data_.train.classes[c]) + "'");
    if (!empty.empty()) {
      const std::string spec = cfg_.get_string("data.dataset");
      const bool files = spec.rfind("folder:", 0) == 0 || spec.rfind("list:", 0) == 0;
      throw InputError(spec + ": class " + join(empty, ", ") + " has no training images (" +
                       (files ? "an empty class folder?" : "the files label no image with it") +
                       (cfg_.get_int("data.max_train_images") > 0 ? " or too few data.max_train_images" : "") +
                       "), so the model would have an output it never learns; " +
                       (files ? "remove the class or add images" : "train on files whose labels cover every class"));
    }
  }
  // Record the normalisation actually used, so evaluation reproduces it exactly.
  if (!data_.mean.empty()) {
    cfg_.set("data.mean=" + yaml_list(data_.mean), "normalisation");
    cfg_.set("data.std=" + yaml_list(data_.std), "normalisation");
  }

  if (data_.train.height < 8 || data_.train.width < 8)  // the model's own check named no key
    throw InputError(cfg_.origin("data.dataset") + ": key 'data.dataset' (" + printable(cfg_.get_string("data.dataset")) +
                     "): the images are " + std::to_string(data_.train.height) + "x" + std::to_string(data_.train.width) +
                     " (height x width) after preprocessing, and the smallest ventral trains on is 8x8; set "
                     "data.image_size (or data.center_crop) to 8 or more");
  const InputShape input{data_.train.channels, data_.train.height};
  ModelOptions mo = model_options(cfg_, input.channels, static_cast<int64_t>(data_.train.classes.size()), input.image_size);
  model_ = create_model(cfg_.get_string("model.name"), mo);
  model_->to(device_);
  std::string initial_weights;
  if (const std::string path = cfg_.get_string("model.weights"); !path.empty() && !resume_) {
    // Fine-tuning: start from a state_dict (a resumed run continues from last.pt instead).
    const bool strict = cfg_.get_bool("model.weights_strict");
    std::map<std::string, torch::Tensor> weights;
    try {
      weights = read_state_dict(path);
    } catch (const InputError& e) {
      throw InputError(cfg_.origin("model.weights") + ": key 'model.weights'" +
                       (std::filesystem::path(path).is_relative() ? " (relative to the working directory): " : ": ") +
                       e.what());
    }
    const auto kept = load_state_dict(*model_, std::move(weights), cfg_.origin("model.weights") + ": model.weights " + path, strict,
                                        "model.weights_strict: false keeps the model's own values for those");
    const size_t total = model_state(*model_).size();  // load_state_dict refused a file that fits none
    initial_weights = ", initial weights " + path + " (" + std::to_string(total - kept.size()) + " of " +
                      std::to_string(total) + " tensors" +
                      (kept.empty() ? std::string(")") : "; kept the model's own " + join(kept, ", ") + ")");
  }
  if (cfg_.get_bool("train.sync_bn")) {
    for (const auto& m : model_->modules())
      if (m->as<torch::nn::BatchNorm2dImpl>() && !m->as<nn::BatchNorm2dImpl>())
        throw std::logic_error(cfg_.get_string("model.name") + " has a batch norm that train.sync_bn cannot reach");
    nn::set_batch_norm_collective(group_ ? static_cast<Collective*>(group_.get()) : &local_);
  }
  // Resolved once: `auto` is saved as what it chose, so a resume and `ventral eval` run the same.
  PrecisionChoice precision;
  if (group_ && cfg_.get_string("precision") == "auto") {
    // Rank 0 probes and decides for all: ranks timing each other's load could disagree.
    std::vector<torch::Tensor> choice{torch::zeros({1}, torch::kLong)};
    if (lead_) {
      precision = choose_precision(*model_, "auto", o_.memory_format, input.channels, input.image_size);
      choice[0].fill_(precision.precision == Precision::BF16 ? 1 : 0);
    }
    group_->broadcast(choice, 0);
    if (!lead_)
      precision = choose_precision(*model_, choice[0].item<int64_t>() ? "bf16" : "fp32", o_.memory_format,
                                   input.channels, input.image_size);
  } else {
    precision = choose_precision(*model_, cfg_.get_string("precision"), o_.memory_format, input.channels, input.image_size);
  }
  cfg_.set("precision=" + precision_name(precision.precision), "resolved precision");
  optimizer_ = make_optimizer(cfg_, *model_);
  steps_ = model_->default_steps();
  check_step_weights(cfg_, *model_);  // before the first step, not at it

  // With several processes each takes its shard: its part of every training batch, and every
  // world-size-th batch of validation and test (counts summed afterwards).
  auto shard = [&](LoaderOptions o, bool split_batches) {
    o.shard_rank = env_.rank, o.shard_count = env_.world_size, o.split_batches = split_batches;
    return o;
  };
  train_loader_ = std::make_unique<BatchLoader>(data_.train, data_.split.train, shard(loader_options(cfg_, data_, true), true));
  // Validation measures the trained task (perturbed as training is, when it is), so best.pt
  // selects for it; the test measures clean images and, when training was perturbed, that mix too.
  // No held-out images (data.val_fraction: 0): no validation (an empty index would mean every
  // training image to the loader).
  if (!data_.split.val.empty())
    val_loader_ = std::make_unique<BatchLoader>(data_.train, data_.split.val, shard(task_loader_options(cfg_, data_), false));
  test_loader_ = std::make_unique<BatchLoader>(data_.test, std::vector<int64_t>{}, shard(loader_options(cfg_, data_, false), false));
  if (training_perturbation(cfg_).on())
    perturbed_test_loader_ = std::make_unique<BatchLoader>(data_.test, std::vector<int64_t>{},
                                                           shard(task_loader_options(cfg_, data_), false));
  const int64_t per_epoch = train_loader_->batches_per_epoch();
  require(per_epoch > 0, cfg_.origin("train.batch_size") + ": train.batch_size " + std::to_string(o_.batch_size) + " exceeds the " +
                             std::to_string(train_loader_->size()) + " training images");
  schedule_ = LrSchedule::from_config(cfg_, per_epoch);

  if (lead_) make_directories(dir_.checkpoints());
  if (resume_) {  // every rank reads last.pt (the run directory is shared, as it is for torchrun's restarts)
    state_ = load_checkpoint(dir_.last(), *model_, optimizer_.get());
    dir_.check_run_id(dir_.last(), state_.run_id);  // another run's last.pt continues no run
    apply_memory_format(*model_, o_.memory_format);  // the load adopted the saved layout
    if (lead_)
      append_jsonl(dir_.log(), {{"event", "resume"}, {"epoch", state_.epoch}, {"global_step", state_.global_step},
                                {"world_size", env_.world_size}});
  } else {
    state_.metrics_csv = csv_header(readout_steps(*model_, steps_));
    state_.run_id = new_run_id();
    if (lead_) write_file_atomic(dir_.log(), "");
  }
  state_.config = cfg_.dump();
  broadcast_model();
  steps_at_start_ = state_.global_step;
  if (lead_) {
    cfg_.save(dir_.config());
    std::string classes;
    for (const auto& c : data_.train.classes) classes += c + "\n";
    write_file_atomic(dir_.classes(), classes);
    dir_.write_input(input);
    std::vector<double> mean = data_.mean, std = data_.std;  // empty: data.normalize is off
    if (mean.empty()) mean.assign(static_cast<size_t>(input.channels), 0.0), std.assign(mean.size(), 1.0);
    nlohmann::json description = model_json({cfg_, model_->default_steps(), input.channels, input.image_size, mean, std,
                                             data_.train.classes});
    if (!state_.run_id.empty()) description["run_id"] = state_.run_id;  // what `ventral eval` matches checkpoints by
    write_file_atomic(dir_.model_json(), description.dump(2) + "\n");
  }
  const std::string world = group_ ? ", " + std::to_string(env_.world_size) + " processes (" + env_.source +
                                         ", gloo" + (cfg_.get_bool("train.sync_bn") ? ", sync_bn" : "") + ")"
                                   : "";
  if (lead_)
    std::fprintf(stderr, "train: %s on %s (%lld images %s, %lld batches per epoch), %lld parameters, %lld step(s), %lld threads%s, %s, precision %s\n",
                 cfg_.get_string("model.name").c_str(), data_.train.name.c_str(), (long long)train_loader_->size(),
                 data_.train.storage.c_str(),
                 (long long)per_epoch, (long long)count_parameters(*model_), (long long)steps_, (long long)threads_,
                 (group_ ? " per process" + world : world).c_str(), device_.str().c_str(),
                 (precision.reason + initial_weights).c_str());
}

// A new run writes only into a new or empty folder, or over a run of the same config that
// stopped before its first checkpoint; never over someone else's files.
void Run::check_new_run_dir() const {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path path(dir_.path());
  if (!fs::exists(path, ec)) return;
  if (!fs::is_directory(path, ec)) throw InputError("--run-dir " + dir_.path() + ": exists and is not a folder; give a new or empty folder, or a run to --resume");
  if (dir_.holds_config()) {
    if (!written_by_ventral(dir_.config()))
      throw InputError("--run-dir " + dir_.path() + ": its config.yaml was not written by ventral (the first line is not '" +
                       kSavedConfigMark + "'), so the folder is no run to continue; choose a new or empty folder");
    std::set<std::string> run_files = {fs::path(dir_.checkpoints()).filename().string()};
    for (const std::string& f : dir_.files()) run_files.insert(fs::path(f).filename().string());
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      const std::string name = entry.path().filename().string();
      if (!run_files.count(name) && name[0] != '.')
        throw InputError("--run-dir " + dir_.path() + ": holds " + printable(name) +
                         ", which no run writes; choose a new or empty folder");
    }
    std::string diff = join(training_differences(Config::load(dir_.config()), cfg_), ", ");
    if (diff.empty()) return;
    throw InputError(dir_.config() + ": this folder holds a run with another config (" + diff +
                     "); choose another --run-dir, or remove the folder to replace it");
  }
  if (fs::directory_iterator(path, ec) != fs::directory_iterator())
    throw InputError("--run-dir " + dir_.path() + ": the folder is not empty and holds no ventral run (no config.yaml); "
                     "choose a new or empty folder");
}

void Run::stop(const std::string& why, bool saved) {
  if (!saved && lead_) save_checkpoint(dir_.last(), *model_, optimizer_.get(), state_);
  if (group_) group_->barrier();  // every rank leaves together, once last.pt is written
  report_.exit_status = stop_signal_ == SIGTERM ? kExitSigterm : stop_signal_ ? kExitSigint : kExitStoppedAfterSteps;
  report_.message = why + " at " + position() + ": saved " + dir_.last() +
                    " (continue with: ventral train --run-dir " + dir_.path() + " --resume)";
  report_.train_seconds = state_.train_seconds;
}

bool Run::train_epoch() {
  train_loader_->start_epoch(state_.epoch, state_.step_in_epoch);
  const int64_t per_epoch = train_loader_->batches_per_epoch();
  // A resumed epoch says where it resumed: its count covers the steps left (none when the stop
  // fell on the epoch's last step).
  const std::string resumed = state_.step_in_epoch == 0 ? ""
                              : " (resumed after step " + std::to_string(state_.step_in_epoch) + " of " +
                                    std::to_string(per_epoch) + ")";
  Progress progress("epoch " + std::to_string(state_.epoch + 1) + "/" + std::to_string(o_.epochs) + resumed,
                    std::max<int64_t>(0, per_epoch - state_.step_in_epoch) * o_.batch_size, "img", o_.log_every);
  // A resumed epoch continues the sums of its batches before the stop.
  if (state_.step_in_epoch == 0) state_.epoch_loss_sum = state_.epoch_correct = state_.epoch_seen = state_.epoch_seconds = state_.epoch_lr = 0;
  loss_sum_ = state_.epoch_loss_sum, lr_ = state_.epoch_lr, comm_seconds_ = 0;
  correct_ = static_cast<int64_t>(state_.epoch_correct), seen_ = static_cast<int64_t>(state_.epoch_seen);
  const double seconds_before = state_.epoch_seconds;
  const int64_t seen_before = seen_;
  auto t0 = std::chrono::steady_clock::now();
  while (auto batch = train_loader_->next()) {
    lr_ = schedule_.at(state_.global_step);
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr_);
    torch::Tensor images = model_->inputs(batch->images.to(device_)), labels = batch->labels.to(device_);
    auto logits = forward_logits(*model_, images, steps_);
    torch::Tensor loss = step_loss(logits, labels, o_.step_loss, o_.step_weights, o_.label_smoothing);
    const int64_t local_n = labels.size(0);
    optimizer_->zero_grad();
    loss.backward();
    // This step's loss × images, correct answers, images and stop requests, summed over the
    // ranks in the gradient all-reduce (one collective per step), so every rank decides alike.
    // The stop vote reads the signal once: one arriving later is counted at the next step.
    const int sig = g_signal;
    std::vector<double> totals{loss.item<double>() * local_n,
                               static_cast<double>(logits.back().argmax(1).eq(labels).sum().item<int64_t>()),
                               static_cast<double>(local_n), sig == SIGINT ? 1.0 : 0.0, sig == SIGTERM ? 1.0 : 0.0};
    if (group_) {
      const auto c0 = std::chrono::steady_clock::now();
      average_gradients(*group_, model_->parameters(), totals);
      comm_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count();
    }
    stop_signal_ = requested_signal(totals[3], totals[4]);
    const double loss_value = totals[0] / totals[2];
    if (!std::isfinite(loss_value)) {
      report_.exit_status = kExitDiverged;
      report_.message = "loss became " + std::string(std::isnan(loss_value) ? "NaN" : "Inf") + " at epoch " +
                        std::to_string(state_.epoch + 1) + ", step " + std::to_string(state_.step_in_epoch + 1) +
                        " (global step " + std::to_string(state_.global_step + 1) + "); the last good checkpoint is " +
                        (dir_.started() ? dir_.last() : std::string("(none yet)")) + "; lower train.lr or set train.grad_clip" +
                        (!cfg_.get_string("model.weights").empty() && state_.global_step == steps_at_start_
                             ? ", or check model.weights (the first step already diverged: do its values overflow?)"
                             : "");
      return false;
    }
    if (o_.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model_->parameters(), o_.grad_clip);
    optimizer_->step();
    ++state_.global_step;
    ++state_.step_in_epoch;
    const auto n = static_cast<int64_t>(totals[2]);
    loss_sum_ += totals[0];
    correct_ += static_cast<int64_t>(totals[1]);
    seen_ += n;
    progress.update(n, "loss " + format_number("%.4f", loss_sum_ / seen_) + " acc " + format_number("%.2f%%", 100.0 * correct_ / seen_));
    if (lead_ && state_.global_step % o_.log_every == 0)
      append_jsonl(dir_.log(), {{"event", "step"}, {"epoch", state_.epoch + 1}, {"step", state_.step_in_epoch},
                                {"global_step", state_.global_step}, {"lr", lr_}, {"loss", loss_sum_ / seen_},
                                {"acc", double(correct_) / seen_}, {"images_per_s", (seen_ - seen_before) / progress.elapsed_seconds()}});
    if (stop_signal_ || (o_.stop_after_steps > 0 && state_.global_step - steps_at_start_ >= o_.stop_after_steps)) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      state_.train_seconds += seconds;
      state_.epoch_loss_sum = loss_sum_, state_.epoch_correct = static_cast<double>(correct_);
      state_.epoch_seen = static_cast<double>(seen_), state_.epoch_seconds = seconds_before + seconds, state_.epoch_lr = lr_;
      stop(stop_signal_ ? signal_name(stop_signal_) : "stopped after train.stop_after_steps=" + std::to_string(o_.stop_after_steps), false);
      return false;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  state_.train_seconds += seconds;
  epoch_seconds_ = seconds_before + seconds;
  progress.finish("loss " + format_number("%.4f", seen_ ? loss_sum_ / seen_ : 0) + " acc " +
                  format_number("%.2f%%", seen_ ? 100.0 * correct_ / seen_ : 0));
  return true;
}

bool Run::end_epoch() {
  // Batch-norm running statistics are per rank (without train.sync_bn): rank 0's are the ones
  // validated and saved everywhere, as DDP's buffer broadcast makes them.
  broadcast_model();
  // A weight or batch-norm statistic that overflowed is divergence even while the loss stays
  // finite (batch norm in training normalises with the batch's own statistics, so an infinite
  // running variance shows only at evaluation, where it can make every output 0, not NaN).
  if (const std::string bad = first_non_finite(*model_); !bad.empty()) {
    report_.exit_status = kExitDiverged;
    report_.message = "the model's " + bad + " became NaN or infinite in epoch " + std::to_string(state_.epoch + 1) +
                      " (global step " + std::to_string(state_.global_step) + "); the last good checkpoint is " +
                      (dir_.started() ? dir_.last() : std::string("(none yet)")) + "; lower train.lr or set train.grad_clip";
    return false;
  }
  StepMetrics val;
  try {
    if (val_loader_ && val_loader_->size()) val = evaluate_shards(*val_loader_, "");
  } catch (const NonFiniteOutputs&) {  // the epoch's last steps overflowed the weights: divergence
    report_.exit_status = kExitDiverged;
    report_.message = "the model's outputs became NaN or infinite in validation after epoch " +
                      std::to_string(state_.epoch + 1) + " (global step " + std::to_string(state_.global_step) +
                      ": the weights overflow float32); the last good checkpoint is " +
                      (dir_.started() ? dir_.last() : std::string("(none yet)")) + "; lower train.lr or set train.grad_clip";
    return false;
  }
  const double train_loss = seen_ ? loss_sum_ / seen_ : 0, train_acc = seen_ ? double(correct_) / seen_ : 0;
  double val_acc = val.accuracy.empty() ? train_acc : val.accuracy.back();
  const std::vector<int64_t> val_steps = readout_steps(*model_, steps_);
  std::string row = std::to_string(state_.epoch + 1) + "," + csv_number("%.6g", lr_) + "," +
                    csv_number("%.6f", train_loss) + "," + csv_number("%.6f", train_acc) + "," +
                    csv_number("%.6f", val.loss.empty() ? NAN : val.loss.back());
  for (size_t t = 0; t < val_steps.size(); ++t) row += "," + csv_number("%.6f", t < val.accuracy.size() ? val.accuracy[t] : NAN);
  row += "," + csv_number("%.2f", epoch_seconds_) + "\n";
  state_.metrics_csv += row;
  std::string accs;
  for (double a : val.accuracy) accs += format_number(" %.2f", 100 * a);
  if (lead_)
    std::fprintf(stderr, "epoch %lld/%lld: val acc (%%) by step:%s\n", (long long)state_.epoch + 1,
                 (long long)o_.epochs, accs.c_str());
  if (lead_)
    append_jsonl(dir_.log(), {{"event", "epoch"}, {"epoch", state_.epoch + 1}, {"lr", lr_}, {"train_loss", train_loss},
                            {"train_acc", train_acc}, {"val_steps", val.steps}, {"val_acc", val.accuracy},
                            {"val_loss", val.loss}, {"seconds", epoch_seconds_}});
  if (lead_ && group_)  // how much of the epoch the gradient all-reduce took (rank 0's view)
    append_jsonl(dir_.log(), {{"event", "distributed"}, {"epoch", state_.epoch + 1}, {"world_size", env_.world_size},
                              {"gradient_allreduce_seconds", comm_seconds_}, {"seconds", epoch_seconds_}});
  state_.epoch_loss_sum = state_.epoch_correct = state_.epoch_seen = state_.epoch_seconds = state_.epoch_lr = 0;
  TrainState next = state_;
  ++next.epoch;
  next.step_in_epoch = 0;
  if (val_acc > state_.best_val) {
    next.best_val = val_acc;
    if (lead_) save_checkpoint(dir_.best(), *model_, optimizer_.get(), next);
  }
  if (lead_) {
    save_checkpoint(dir_.last(), *model_, optimizer_.get(), next);
    write_file_atomic(dir_.metrics(), state_.metrics_csv);
  }
  state_.best_val = next.best_val;
  if (!signalled_anywhere()) return true;
  state_ = next;
  stop(signal_name(stop_signal_), true);
  return false;
}

void Run::finish() {
  report_.test = evaluate_shards(*test_loader_, "test");
  report_.finished = true;
  report_.train_seconds = state_.train_seconds;
  nlohmann::json test = {{"model", cfg_.get_string("model.name")}, {"dataset", data_.test.name},
                         {"n", report_.test.n}, {"steps", report_.test.steps}, {"accuracy", report_.test.accuracy},
                         {"loss", report_.test.loss}, {"params", count_parameters(*model_)},
                         {"train_seconds", state_.train_seconds}, {"epochs", o_.epochs},
                         {"precision", precision_name(model_->precision())}};
  if (perturbed_test_loader_) {
    const StepMetrics m = evaluate_shards(*perturbed_test_loader_, "test (training perturbation)");
    test["train_perturbation"] = {{"spec", cfg_.get_string("data.augment.perturb")},
                                  {"fraction", cfg_.get_float("data.augment.perturb_fraction")},
                                  {"seed", o_.seed}, {"n", m.n}, {"steps", m.steps}, {"accuracy", m.accuracy},
                                  {"loss", m.loss}};
  }
  if (group_) test["world_size"] = env_.world_size;
  // data.skip_bad_images: how many files were skipped, so a result never hides them.
  for (const auto& [key, data] : {std::pair<const char*, const Dataset*>{"skipped_train_images", &data_.train},
                                  {"skipped_test_images", &data_.test}})
    if (data->files && data->files->skipped() > 0) {
      test[key] = data->files->skipped();
      if (lead_)
        std::fprintf(stderr, "note: %zu %s images did not decode and were skipped (data.skip_bad_images)\n",
                     data->files->skipped(), key == std::string("skipped_train_images") ? "training" : "test");
    }
  if (lead_) {
    write_file_atomic(dir_.test(), test.dump(2) + "\n");
    append_jsonl(dir_.log(), {{"event", "test"}, {"steps", report_.test.steps}, {"accuracy", report_.test.accuracy}});
  }
  if (group_) group_->barrier();  // every rank finishes once the run directory is complete
}

}  // namespace

TrainReport train(const Config& cfg, const std::string& run_dir, bool resume) { return Run(cfg, run_dir, resume)(); }

}  // namespace ventral
