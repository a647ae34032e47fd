#pragma once
/// Experiment files for `ventral compare`: a base training config, the models to compare (each
/// with its own recipe and overrides), the feed-forward reference and the evaluation sweep.
#include <string>
#include <vector>

#include "core/config.hpp"

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
  std::vector<CompareModel> models;
  std::string reference;               ///< name of the feed-forward baseline
  std::string steps = "";              ///< eval steps, e.g. "1:8"
  std::string perturb = "all";
  int64_t limit = 0;
  uint64_t seed = 0;
};

/// Reads and checks an experiment file; InputError naming the file and key otherwise.
/// `overrides` are key=value: eval.steps / eval.perturb / eval.limit / eval.seed replace the
/// experiment's eval section, every other key applies to every model's training config.
/// `only`, when not empty, keeps just those models (the reference must be among them).
Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides = {},
                           const std::vector<std::string>& only = {});

/// A model's training config: its base (or the experiment's), then the experiment's overrides,
/// then the model's own.
Config model_config(const Experiment& experiment, const CompareModel& model);

}  // namespace ventral
