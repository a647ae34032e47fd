#pragma once
/// `ventral compare`: the study layer. Trains several models on one base config (reusing
/// finished runs, resuming interrupted ones), evaluates them on the same images, steps and
/// perturbations, with the reference predicted once and passed to every other model's summary,
/// and writes REPORT.md from the summaries.
#include <functional>
#include <string>
#include <vector>

#include "study/experiment.hpp"

namespace ventral {

/// Refuses (InputError naming the run's config.yaml and the differing keys) a run already in
/// OUT/runs that was trained with another recipe than the experiment asks for. Keys that do not
/// affect what is learned (KeySpec::affects_training) and a measured normalisation may differ.
void check_reusable_runs(const Experiment& experiment, const std::string& out);

/// Runs `ventral train ARGS` (ARGS from train_args()) some other way than in this process (the
/// CLI's multi-process launcher) and returns its exit status.
using TrainCommand = std::function<int(const std::vector<std::string>& train_args)>;

/// Runs the experiment into `out` and returns the path of REPORT.md. Runs are trained in this
/// process, or through `external` when given.
std::string run_compare(const Experiment& experiment, const std::string& out, const TrainCommand& external = nullptr);

/// The `ventral train` arguments (without the program name) of every run the experiment still
/// needs, finished runs left out: `train OUT/plan/<model>[/seed<k>].yaml --run-dir OUT/runs/...`
/// for a new run (the config written there), `train --run-dir DIR --resume` for a started one.
/// A later `ventral compare` picks the finished runs up.
std::vector<std::vector<std::string>> plan_compare(const Experiment& experiment, const std::string& out);

}  // namespace ventral
