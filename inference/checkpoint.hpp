#pragma once
/// Checkpoints: model, optimizer, training position, metrics so far and the RNG state, in one
/// torch archive written atomically (temporary file + rename): a crash never leaves a torn
/// checkpoint.
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "models/model.hpp"

namespace ventral {

struct TrainState {
  int64_t epoch = 0;          ///< the epoch in progress (or next to start when step_in_epoch = 0)
  int64_t step_in_epoch = 0;  ///< optimizer steps already taken in `epoch`
  int64_t global_step = 0;    ///< optimizer steps since the start of training
  double best_val = -1;       ///< best validation accuracy at the final step so far
  double train_seconds = 0;   ///< training time so far (excluding evaluation)
  std::string metrics_csv;    ///< metrics.csv as of this checkpoint
  /// A run stopped inside `epoch`: its sums so far (loss × images, correct answers, images,
  /// seconds, the last learning rate), so the epoch's metrics.csv row covers every batch of it
  /// when the run resumes. Zero at an epoch's start (and in older checkpoints).
  double epoch_loss_sum = 0, epoch_correct = 0, epoch_seen = 0, epoch_seconds = 0, epoch_lr = 0;
  std::string config;         ///< the config trained with (Config::dump()); empty in older checkpoints
  /// Drawn when the run starts and kept by each of its checkpoints and its model.json: a checkpoint
  /// of another run, even of the same config (another seed), is told from the run's own. Empty in
  /// older checkpoints.
  std::string run_id;
};

void save_checkpoint(const std::string& path, VisionModelImpl& model, torch::optim::Optimizer* optimizer,
                     const TrainState& state);
/// Restores the model, and with an optimizer (resuming training) the optimizer and the global
/// RNG state; InputError naming the file when it is missing, corrupt, or was written for
/// another model.
TrainState load_checkpoint(const std::string& path, VisionModelImpl& model, torch::optim::Optimizer* optimizer);
/// The config a checkpoint was trained with (TrainState::config); empty when the checkpoint
/// predates it. InputError when the file is damaged.
std::string checkpoint_config(const std::string& path);
/// The metrics.csv a checkpoint keeps (TrainState::metrics_csv); InputError when the file is damaged.
std::string checkpoint_metrics(const std::string& path);
/// Checks a TorchScript archive (a ventral checkpoint) before LibTorch reads it: every storage
/// its pickles name must be a record of exactly the storage's size, and every tensor view must
/// lie inside its storage. LibTorch 1.13's reader checks neither, so a record cut short (and
/// re-checksummed) would load as the memory past its end. `entry_sizes`: the zip directory's
/// (verify_zip_checksums). InputError naming the file and the storage otherwise.
void verify_tensor_records(const std::string& path, const std::map<std::string, uint64_t>& entry_sizes);

// Weights in and out of PyTorch: state_dict files as Python's torch.save(model.state_dict())
// writes them (zip format), read and written through LibTorch's pickler.

/// The model's parameters and buffers by name (named_parameters, then named_buffers).
std::vector<std::pair<std::string, torch::Tensor>> model_state(VisionModelImpl& model);
/// Writes the model's state_dict so that Python's torch.load returns a plain {name: tensor} dict
/// (contiguous fp32 CPU tensors, ventral's names).
void save_state_dict(const std::string& path, VisionModelImpl& model);
/// Reads a torch.save file holding a state_dict, or a dict with one under "state_dict" (as
/// training scripts save it). InputError when the file is not one (legacy non-zip format,
/// truncated, not a dict of tensors).
std::map<std::string, torch::Tensor> read_state_dict(const std::string& path);
/// "missing: ...; unexpected: ...; wrong shape or type: ..." between `saved` and the model's
/// tensors (the first few of each, with shapes), or "" when they fit exactly. `mismatched`
/// collects the model's names that are missing or wrongly shaped.
std::string weights_mismatch(const std::map<std::string, torch::Tensor>& saved, VisionModelImpl& model,
                             std::vector<std::string>* mismatched = nullptr);
/// Copies `state` into `model`; a "module." prefix on every name (DataParallel) is stripped.
/// Strict: the names, shapes and dtypes must fit exactly (InputError naming `origin` and the
/// first missing, unexpected and wrong-shaped entries). Not strict: the model's entries that are
/// missing or wrongly shaped in `state` keep their values (a replaced classifier) and are
/// returned; unexpected entries are ignored. `hint` ends a strict mismatch's message: what the
/// user can change.
std::vector<std::string> load_state_dict(VisionModelImpl& model, std::map<std::string, torch::Tensor> state,
                                         const std::string& origin, bool strict, const std::string& hint = "");

}  // namespace ventral
