#pragma once
/// Each subcommand of the `ventral` binary registers itself on the app.
#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace ventral::cli {

/// Thrown by a command that has already reported its outcome and must leave with `code`
/// (e.g. 130 after SIGINT); main returns it after the stack (and every file handle) unwinds.
struct ExitStatus {
  int code;
};

/// key=value overrides given on one command line: a key given twice (the first silently lost)
/// is refused, naming both values.
inline void refuse_repeated_overrides(const std::vector<std::string>& overrides) {
  for (size_t i = 0; i < overrides.size(); ++i)
    for (size_t j = 0; j < i; ++j) {
      const std::string key = overrides[i].substr(0, overrides[i].find('='));
      const std::string earlier = overrides[j].substr(0, overrides[j].find('='));
      if (key == earlier)
        throw InputError("'" + key + "' is given twice on the command line ('" + overrides[j] + "', then '" +
                         overrides[i] + "'); give it once");
      // A section given whole (`train={lr: 0.2}`) and one of its keys (`train.lr=0.1`): the later
      // would silently win.
      const bool within = key.rfind(earlier + ".", 0) == 0 || earlier.rfind(key + ".", 0) == 0;
      if (within)
        throw InputError("'" + overrides[j] + "' and '" + overrides[i] + "' on the command line: one sets the section '" +
                         (key.size() < earlier.size() ? key : earlier) + "' whole, the other one of its keys; give "
                         "them one way (a KEY=VALUE each, or one mapping)");
    }
}

/// A seed flag's value: decimal digits, at most `max`. CLI11's own conversion would take 0x10
/// as hex and 2^64 (or any larger number) as 2^64 - 1, and wrap -1 around.
inline CLI::Validator seed_value(uint64_t max) {
  return CLI::Validator(
      [max](std::string& text) -> std::string {
        const std::string range = "a seed is a whole number from 0 to " + std::to_string(max);
        if (text.empty() || text.size() > 20 || text.find_first_not_of("0123456789") != std::string::npos)
          return "'" + text + "' is not a number: " + range;
        errno = 0;
        const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
        if (errno == ERANGE || v > max) return text + " is too large: " + range;
        return "";
      },
      "UINT");
}

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
