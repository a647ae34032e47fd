// `ventral compare EXPERIMENT.yaml [key=value ...] [--out DIR]`
#include <cstdio>
#include <filesystem>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "study/compare.hpp"

namespace ventral::cli {

void add_compare_command(CLI::App& app) {
  struct Args {
    std::vector<std::string> positional;
    std::string out;
    std::vector<std::string> models;
    std::vector<uint64_t> seeds;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("compare", "Train, evaluate and compare models; writes REPORT.md with tables and figures");
  cmd->add_option("experiment", a->positional, "EXPERIMENT.yaml followed by key=value overrides for every model")
      ->required();
  cmd->add_option("--out", a->out, "experiment folder (default runs/<experiment name>)");
  // One argument per --models (split at commas), so it cannot swallow the overrides after it.
  cmd->add_option("--models", a->models, "run only these of the experiment's models (comma-separated)")
      ->delimiter(',')
      ->allow_extra_args(false);
  cmd->add_option("--seeds", a->seeds, "train every model once per seed (comma-separated; replaces the experiment's seeds)")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 9.2e18))  // the config key seed's range; not -1 wrapped to 2^64 - 1
      ->allow_extra_args(false);
  cmd->callback([a] {
    std::string path;
    std::vector<std::string> overrides;
    for (const auto& p : a->positional) (p.find('=') != std::string::npos ? overrides.push_back(p) : void(path = p));
    if (path.empty()) throw InputError("compare needs an EXPERIMENT.yaml (see configs/compare_quick.yaml)");
    Experiment x = load_experiment(path, overrides, a->models, a->seeds);
    std::string out = a->out.empty() ? (std::filesystem::path("runs") / std::filesystem::path(path).stem()).string() : a->out;
    std::string report = run_compare(x, out);
    std::printf("report: %s\n", report.c_str());
  });
}

}  // namespace ventral::cli
