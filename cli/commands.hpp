#pragma once
/// Each subcommand of the `ventral` binary registers itself on the app.
#include <CLI/CLI.hpp>

namespace ventral::cli {

/// Thrown by a command that has already reported its outcome and must leave with `code`
/// (e.g. 130 after SIGINT); main returns it after the stack (and every file handle) unwinds.
struct ExitStatus {
  int code;
};

void add_config_command(CLI::App& app);
void add_data_command(CLI::App& app);
void add_models_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_perturb_command(CLI::App& app);
void add_compare_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_export_command(CLI::App& app);

}  // namespace ventral::cli
