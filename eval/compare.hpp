#pragma once
/// `ventral compare`: train several models on one base config (reusing finished runs,
/// resuming interrupted ones), evaluate them on the same steps and perturbations, and write a
/// readable REPORT.md with tables, figures and a reading generated from the numbers.
#include <string>
#include <vector>

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

/// Runs the experiment into `out` and returns the path of REPORT.md.
std::string run_compare(const Experiment& experiment, const std::string& out);

}  // namespace ventral
