#pragma once
/// Learning-rate schedules as pure functions of the optimizer step, so a resumed run needs
/// only its step count to continue the curve exactly.
#include <cstdint>
#include <string>
#include <vector>

namespace ventral {

class Config;

struct LrSchedule {
  std::string kind = "constant";  ///< constant | step | cosine | onecycle
  double lr = 0.1;                ///< peak learning rate
  double min_lr = 0;              ///< cosine: final value
  double warmup_steps = 0;        ///< linear warm-up from 0 (constant, step, cosine)
  std::vector<double> milestones; ///< step: in optimizer steps
  double gamma = 0.1;
  int64_t total_steps = 1;

  /// The learning rate for optimizer step `step` (0-based).
  ///  - warm-up: lr · (step + 1) / warmup_steps while step < warmup_steps;
  ///  - constant: lr;  step: lr · gamma^(milestones ≤ step);
  ///  - cosine: min_lr + (lr − min_lr)(1 + cos(π p))/2, p = progress after warm-up in [0, 1];
  ///  - onecycle (torch's OneCycleLR, cosine annealing): lr/25 → lr over the first 30 %, then
  ///    → lr/25/1e4 by the end.
  double at(int64_t step) const;

  /// Built from the train.* keys for `steps_per_epoch` optimizer steps an epoch.
  static LrSchedule from_config(const Config& cfg, int64_t steps_per_epoch);
};

}  // namespace ventral
