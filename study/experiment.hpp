#pragma once
/// Experiment files for `ventral compare`: a base training config, the models to compare (each
/// with its own recipe and overrides), the feed-forward reference and the evaluation sweep.
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "eval/summary.hpp"

namespace ventral {

struct CompareModel {
  std::string name;                    ///< label and run-directory name
  std::string base;                    ///< its own training config (resolved path); empty = the experiment's
  std::vector<std::string> overrides;  ///< key=value on top of the base config
};

struct Experiment {
  std::string path;                    ///< the experiment file
  std::string base;                    ///< base training config (resolved path)
  std::vector<std::string> overrides;  ///< applied to every model (experiment + command line)
  size_t file_overrides = 0;           ///< how many of `overrides` come first from the experiment file
  std::vector<CompareModel> models;
  /// `seeds: [0, 1, 2]`: every model trains once per seed (runs/<name>/seed<k>, config key
  /// `seed` set to k) and the report gives mean ± sd over seeds. Empty: one run per model with
  /// its config's own seed (runs/<name>).
  std::vector<uint64_t> seeds;
  std::string reference;               ///< name of the feed-forward baseline
  std::string steps = "";              ///< eval steps, e.g. "1:8"
  std::string perturb = "all";
  int64_t limit = 0;
  uint64_t seed = 0;
  /// Backward masking (eval.present: "1:3", eval.mask: blank|noise): every model that takes the
  /// image at every step is also evaluated with the image shown at steps 1..K only, on clean
  /// images and each family of `perturb` at its highest severity. Empty: off.
  std::string present;
  std::string mask = "blank";
};

/// Reads and checks an experiment file; InputError naming the file and key otherwise.
/// `overrides` are key=value: eval.steps / eval.perturb / eval.limit / eval.seed / eval.present /
/// eval.mask replace the
/// experiment's eval section, every other key applies to every model's training config.
/// `only`, when not empty, keeps just those models (the reference must be among them).
/// `seeds`, when not empty, replaces the experiment's seeds (`--seeds 0,1,2`).
///
/// `train_perturb: SPEC` (top level, or in a model entry, which wins) is short for the config
/// override data.augment.perturb: SPEC: the models train (and validate) on perturbed images.
Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides = {},
                           const std::vector<std::string>& only = {}, const std::vector<uint64_t>& seeds = {});

/// A model's training config: its base (or the experiment's), then the experiment's overrides,
/// then the model's own, then `seed` (when the experiment lists seeds).
Config model_config(const Experiment& experiment, const CompareModel& model,
                    std::optional<uint64_t> seed = std::nullopt);

/// The conditions backward masking is evaluated on: clean images, then each family of
/// `perturb` at its highest severity.
std::vector<Condition> masking_conditions(const std::string& perturb);

/// The seeds a model trains with: the experiment's, or {nullopt} (the config's own seed).
std::vector<std::optional<uint64_t>> run_seeds(const Experiment& experiment);

}  // namespace ventral
