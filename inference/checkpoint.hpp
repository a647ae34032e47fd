#pragma once
/// Checkpoints: model, optimizer, training position, metrics so far and the RNG state, in one
/// torch archive written atomically (temporary file + rename): a crash never leaves a torn
/// checkpoint.
#include <torch/torch.h>

#include "models/model.hpp"

namespace ventral {

struct TrainState {
  int64_t epoch = 0;          ///< the epoch in progress (or next to start when step_in_epoch = 0)
  int64_t step_in_epoch = 0;  ///< optimizer steps already taken in `epoch`
  int64_t global_step = 0;    ///< optimizer steps since the start of training
  double best_val = -1;       ///< best validation accuracy at the final step so far
  double train_seconds = 0;   ///< training time so far (excluding evaluation)
  std::string metrics_csv;    ///< metrics.csv as of this checkpoint
};

void save_checkpoint(const std::string& path, VisionModelImpl& model, torch::optim::Optimizer* optimizer,
                     const TrainState& state);
/// Restores the model, and with an optimizer (resuming training) the optimizer and the global
/// RNG state; InputError naming the file when it is missing, corrupt, or was written for
/// another model.
TrainState load_checkpoint(const std::string& path, VisionModelImpl& model, torch::optim::Optimizer* optimizer);

}  // namespace ventral
