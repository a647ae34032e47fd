// `ventral compare EXPERIMENT.yaml [key=value ...] [--out DIR]`
#include <cstdio>
#include <filesystem>

#include "cli/commands.hpp"
#include "cli/launch.hpp"
#include "core/error.hpp"
#include "core/text.hpp"
#include "study/compare.hpp"
#include "train/distributed.hpp"

namespace ventral::cli {

void add_compare_command(CLI::App& app) {
  struct Args {
    std::vector<std::string> positional;
    std::string out;
    std::vector<std::string> models;
    std::vector<uint64_t> seeds;
    int nproc = 1;
    bool plan = false;
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
      ->check(seed_value(9200000000000000000ull))  // the config key seed's range
      ->allow_extra_args(false);
  cmd->add_option("--nproc", a->nproc, "train each run data-parallel in N processes on this machine (ventral train --nproc)")
      ->check(CLI::Range(1, 1024));
  cmd->add_flag("--plan", a->plan,
                "print one self-contained `ventral train` command per run still needed (for a Slurm job array or "
                "xargs -P) and exit; a later `ventral compare` picks the finished runs up");
  cmd->callback([a] {
    std::string path;
    std::vector<std::string> overrides;
    for (const auto& p : a->positional) {
      if (p.find('=') != std::string::npos) overrides.push_back(p);
      else if (path.empty()) path = p;
      else throw InputError("compare: more than one experiment file given ('" + path + "' and '" + p + "')");
    }
    refuse_repeated_overrides(overrides);
    if (path.empty()) throw InputError("compare needs an EXPERIMENT.yaml (see configs/compare_quick.yaml)");
    if (read_dist_env().distributed())
      throw InputError("compare: this process is one rank of a multi-process job (" + read_dist_env().source +
                       "); run compare once, with --nproc N to train each run in N processes, or --plan to get one "
                       "`ventral train` command per run for a launcher");
    Experiment x = load_experiment(path, overrides, a->models, a->seeds);
    std::string out = a->out.empty() ? (std::filesystem::path("runs") / std::filesystem::path(path).stem()).string() : a->out;
    auto with_nproc = [&](std::vector<std::string> args) {
      if (a->nproc > 1) args.insert(args.end(), {"--nproc", std::to_string(a->nproc)});
      return args;
    };
    if (a->plan) {
      for (const auto& args : plan_compare(x, out)) {
        std::string line = "ventral";
        for (const auto& arg : with_nproc(args)) line += " " + shell_quote(arg);
        std::printf("%s\n", line.c_str());
      }
      return;
    }
    TrainCommand external;
    if (a->nproc > 1) external = [&](const std::vector<std::string>& args) { return launch_local_ranks(a->nproc, args); };
    std::string report = run_compare(x, out, external);
    std::printf("report: %s\n", report.c_str());
  });
}

}  // namespace ventral::cli
