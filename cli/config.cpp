// `ventral config FILE [key=value ...]`: check a config and print it fully resolved.
#include <filesystem>
#include <iostream>

#include "cli/commands.hpp"
#include "datasets/experiment.hpp"
#include "core/config.hpp"
#include "core/error.hpp"
#include "core/text.hpp"
#include "inference/run_dir.hpp"
#include "train/trainer.hpp"

namespace ventral::cli {

void add_config_command(CLI::App& app) {
  struct Args {
    std::string file, out;
    std::vector<std::string> overrides;
    bool keys = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "config", "Check a YAML config against the schema and print it fully resolved (defaults included)");
  cmd->add_option("file", args->file, "YAML config (omit for the defaults)");
  cmd->add_option("overrides", args->overrides, "key.sub=value overrides, applied after the file");
  cmd->add_option("--out", args->out, "also write the resolved config to this file (atomically)");
  cmd->add_flag("--keys", args->keys, "list every key with its type, default and meaning");
  cmd->callback([args] {
    if (args->keys) {
      if (!args->file.empty() || !args->overrides.empty() || !args->out.empty())
        throw InputError("--keys: lists the schema and reads no config; give it alone (ventral config --keys)");
      for (const auto& k : config_schema())
        std::cout << k.key << " = " << k.default_value << "    # " << k.help << "\n";
      return;
    }
    // A first positional holding '=' is an override, not a file.
    if (args->file.find('=') != std::string::npos) {
      args->overrides.insert(args->overrides.begin(), args->file);
      args->file.clear();
    }
    refuse_repeated_overrides(args->overrides);
    Config cfg = Config::load(args->file, args->overrides);
    check_training_config(cfg);  // refuses what train would refuse before reading data
    if (!args->out.empty()) {
      // Replaces only a config ventral wrote, and never a run's own (its weights were trained by it).
      namespace fs = std::filesystem;
      std::error_code ec;
      const fs::path out = fs::weakly_canonical(fs::absolute(args->out, ec), ec);
      if (RunDir(out.parent_path().string()).is_run())
        throw InputError("--out " + printable(args->out) + ": inside the run directory " + printable(out.parent_path().string()) +
                         ", whose files a config must not replace; write it elsewhere");
      if (fs::exists(fs::symlink_status(out, ec)) && !fs::is_regular_file(out, ec))
        throw InputError("--out " + printable(args->out) + ": exists and is not a regular file; give a file name");
      if (fs::exists(fs::symlink_status(out, ec)) && !written_by_ventral(out.string()))
        throw InputError("--out " + printable(args->out) + ": exists and is not a config ventral wrote (its first line is not '" +
                         kSavedConfigMark + "'); choose another name or remove it first");
      cfg.save(args->out);
    }
    std::cout << cfg.dump();
  });
}

}  // namespace ventral::cli
