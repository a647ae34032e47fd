// `ventral train CONFIG [key=value ...] [--run-dir DIR] [--resume]`
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "cli/commands.hpp"
#include "cli/launch.hpp"
#include "core/error.hpp"
#include "core/text.hpp"
#include "datasets/experiment.hpp"
#include "inference/checkpoint.hpp"
#include "train/distributed.hpp"
#include "train/trainer.hpp"

namespace ventral::cli {

void add_train_command(CLI::App& app) {
  struct Args {
    std::vector<std::string> positional;
    std::string run_dir;
    bool resume = false;
    int nproc = 1;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("train", "Train a model as a YAML config says; resumable, atomic checkpoints");
  cmd->add_option("config", args->positional,
                  "CONFIG.yaml followed by key.sub=value overrides (with --resume the run's own config.yaml "
                  "is used and CONFIG may be omitted)");
  cmd->add_option("--run-dir", args->run_dir, "run directory (default: runs/<config name>)");
  cmd->add_flag("--resume", args->resume, "continue the run in --run-dir from checkpoints/last.pt");
  cmd->add_option("--nproc", args->nproc,
                  "train data-parallel in N processes on this machine (c10d/Gloo; train.batch_size stays the "
                  "global batch). Multi-node: launch with torchrun or srun instead (README)")
      ->check(CLI::Range(1, 1024));
  cmd->footer(
      "Writes RUN_DIR/config.yaml, log.jsonl, metrics.csv, test.json and checkpoints/{last,best}.pt.\n"
      "Exit status: 0 finished; 2 bad input; 3 loss became NaN/Inf; 130/143 interrupted by SIGINT/SIGTERM\n"
      "(checkpoint saved); 75 stopped by train.stop_after_steps; 4 another process of a multi-process run failed.");
  cmd->callback([args] {
    std::string config_path;
    std::vector<std::string> overrides;
    for (const auto& p : args->positional) {
      if (p.find('=') != std::string::npos) overrides.push_back(p);
      else if (config_path.empty()) config_path = p;
      else throw InputError("train: more than one config file given ('" + config_path + "' and '" + p + "')");
    }
    refuse_repeated_overrides(overrides);
    namespace fs = std::filesystem;
    if (!args->resume && args->nproc == 1) {
      // Under torchrun --max_restarts, a restarted group (TORCHELASTIC_RESTART_COUNT > 0)
      // resumes from last.pt by itself: the command torchrun repeats is the first one.
      const DistEnv env = read_dist_env();
      const std::string dir = !args->run_dir.empty() ? args->run_dir
                              : config_path.empty()  ? std::string()
                                                     : (fs::path("runs") / fs::path(config_path).stem()).string();
      if (env.restart > 0 && !dir.empty() && fs::exists(fs::path(dir) / "checkpoints" / "last.pt")) {
        if (env.rank == 0)
          std::fprintf(stderr, "train: torchrun restart %lld: resuming %s from checkpoints/last.pt\n",
                       (long long)env.restart, dir.c_str());
        args->resume = true;
        args->run_dir = dir;
      }
    }
    Config cfg;
    if (args->resume) {
      if (args->run_dir.empty()) throw InputError("train --resume needs --run-dir DIR");
      // A resumed run continues as it was configured. A CONFIG or overrides given with
      // --resume may change only how fast it runs (threads, loader threads, ...), never what
      // it learns: those differences are refused, named.
      const std::string saved_path = (fs::path(args->run_dir) / "config.yaml").string();
      if (!fs::exists(saved_path)) throw InputError(args->run_dir + ": nothing to resume (no config.yaml)");
      cfg = Config::load(saved_path);
      // config.yaml edited after training started would change the run half-way: it must
      // still be the config the last checkpoint was trained with.
      const std::string last = (fs::path(args->run_dir) / "checkpoints" / "last.pt").string();
      if (fs::is_regular_file(last))
        if (const std::string kept = checkpoint_config(last); !kept.empty()) {
          const auto edited = training_differences(Config::from_text(kept, last), cfg);
          if (!edited.empty())
            throw InputError(saved_path + ": differs from the config " + last + " was trained with (" + join(edited, ", ") +
                             "); the file was edited after training started, or " + last +
                             " was copied from another run: restore it, or start a new --run-dir");
        }
      Config wanted = Config::load(config_path.empty() ? saved_path : config_path, overrides);
      auto diff = training_differences(cfg, wanted);
      if (!diff.empty())
        throw InputError("train --resume: " + (config_path.empty() ? std::string("the overrides") : config_path) +
                         " would train differently from the run in " + args->run_dir + " (" + join(diff, ", ") +
                         "); a resumed run continues as configured: start a new --run-dir to change it");
      const auto speed_only = keys_not_affecting_training();
      for (const auto& key : cfg.differing_keys(wanted))
        if (std::find(speed_only.begin(), speed_only.end(), key) != speed_only.end())
          cfg.set(key + "=" + wanted.text(key), "command line");
      if (config_path.empty()) config_path = saved_path;
    } else if (config_path.empty()) {
      throw InputError("train needs a CONFIG.yaml (see configs/)");
    } else {
      cfg = Config::load(config_path, overrides);
      make_dataset_absolute(cfg);  // the run records the folder it read, wherever it is evaluated from
    }
    std::string run_dir = args->run_dir.empty() ? (fs::path("runs") / fs::path(config_path).stem()).string() : args->run_dir;
    if (args->nproc > 1) {  // this process only launches the ranks, each of which runs this command
      check_global_batch(cfg, args->nproc, "--nproc " + std::to_string(args->nproc));  // once, not once per rank
      std::vector<std::string> rank_args{"train"};
      rank_args.insert(rank_args.end(), args->positional.begin(), args->positional.end());
      rank_args.insert(rank_args.end(), {"--run-dir", run_dir});
      if (args->resume) rank_args.push_back("--resume");
      const int status = launch_local_ranks(args->nproc, rank_args);
      if (status != 0) throw ExitStatus{status};
      return;
    }
    TrainReport r;
    try {
      r = train(cfg, run_dir, args->resume);
    } catch (const ProcessGroup::PeerLost& e) {
      std::fprintf(stderr, "error: %s; the last checkpoint is %s\n", e.what(),
                   (fs::path(run_dir) / "checkpoints" / "last.pt").c_str());
      throw ExitStatus{kExitPeerLost};
    }
    if (!r.finished) {
      if (r.lead) std::fprintf(stderr, "%s%s\n", r.exit_status == kExitDiverged ? "error: " : "", r.message.c_str());
      throw ExitStatus{r.exit_status};
    }
    if (!r.lead) return;
    std::printf("test accuracy (%lld images) by step:", (long long)r.test.n);
    for (size_t t = 0; t < r.test.steps.size(); ++t)
      std::printf(" step %lld %.2f%%", (long long)r.test.steps[t], 100 * r.test.accuracy[t]);
    std::printf("\nrun directory: %s (training %.0f s)\n", run_dir.c_str(), r.train_seconds);
  });
}

}  // namespace ventral::cli
