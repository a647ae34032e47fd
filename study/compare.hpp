#pragma once
/// `ventral compare`: the study layer. Trains several models on one base config (reusing
/// finished runs, resuming interrupted ones), evaluates them on the same images, steps and
/// perturbations, with the reference predicted once and passed to every other model's summary,
/// and writes REPORT.md from the summaries.
#include <string>

#include "study/experiment.hpp"

namespace ventral {

/// Refuses (InputError naming the run's config.yaml and the differing keys) a run already in
/// OUT/runs that was trained with another recipe than the experiment asks for. Keys that do not
/// affect what is learned (KeySpec::affects_training) and a measured normalisation may differ.
void check_reusable_runs(const Experiment& experiment, const std::string& out);

/// Runs the experiment into `out` and returns the path of REPORT.md.
std::string run_compare(const Experiment& experiment, const std::string& out);

}  // namespace ventral
