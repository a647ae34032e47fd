#include "train/schedule.hpp"

#include <cmath>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/text.hpp"

namespace ventral {

namespace {
constexpr double kPi = 3.14159265358979323846;
double cosine_between(double from, double to, double p) { return to + (from - to) * (1 + std::cos(kPi * p)) / 2; }
}  // namespace

double LrSchedule::at(int64_t step) const {
  double s = static_cast<double>(step);
  if (kind == "onecycle") {
    double up = 0.3 * total_steps, initial = lr / 25, final_lr = initial / 1e4;
    if (s < up) return cosine_between(initial, lr, s / up);
    return cosine_between(lr, final_lr, std::min(1.0, (s - up) / std::max(1.0, total_steps - up)));
  }
  if (s < warmup_steps) return lr * (s + 1) / warmup_steps;
  if (kind == "step") {
    double v = lr;
    for (double m : milestones)
      if (s >= m) v *= gamma;
    return v;
  }
  if (kind == "cosine") {
    double span = std::max(1.0, total_steps - warmup_steps);
    return cosine_between(lr, min_lr, std::min(1.0, (s - warmup_steps) / span));
  }
  return lr;
}

LrSchedule LrSchedule::from_config(const Config& cfg, int64_t steps_per_epoch) {
  LrSchedule s;
  s.kind = cfg.get_string("train.schedule");
  s.lr = cfg.get_float("train.lr");
  s.min_lr = cfg.get_float("train.min_lr");
  s.gamma = cfg.get_float("train.gamma");
  s.warmup_steps = cfg.get_float("train.warmup_epochs") * steps_per_epoch;
  for (double m : cfg.get_floats("train.milestones")) s.milestones.push_back(m * steps_per_epoch);
  s.total_steps = cfg.get_int("train.epochs") * steps_per_epoch;
  if (s.kind == "cosine" && s.min_lr > s.lr)
    throw InputError(cfg.origin("train.min_lr") + ": train.min_lr " + format_number("%g", s.min_lr) + " is above train.lr " +
                     format_number("%g", s.lr) + "; the cosine schedule decays from lr to min_lr");
  return s;
}

}  // namespace ventral
