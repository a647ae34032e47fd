// ventral: one binary, one subcommand per job. Exit status: 0 success, 2 bad input or usage
// (one "error: ..." line on stderr), 1 internal failure; a training run that stops early
// keeps its own status (3 diverged, 75 stopped on purpose, 130/143 SIGINT/SIGTERM).
#include <c10/util/Exception.h>

#include <csignal>
#include <cstring>
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>
#include <optional>
#include <string>
#include <malloc.h>
#include <unistd.h>

#include "cli/commands.hpp"
#include "cli/launch.hpp"
#include "core/error.hpp"
#include "core/io.hpp"
#include "core/text.hpp"

namespace {
// Ctrl-C, kill or a closed terminal outside training (which stops at a step boundary on its
// own): the file being written is removed, the user is told, and the process ends by the signal
// as before (exit status 128 + N to a shell). Only async-signal-safe calls.
extern "C" void on_stop_signal(int sig) {
  ventral::remove_unfinished_files();
  const char* what = sig == SIGINT ? "\nerror: interrupted (SIGINT); the command did not finish and its output is incomplete\n"
                     : sig == SIGTERM ? "error: terminated (SIGTERM); the command did not finish and its output is incomplete\n"
                                      : "error: hung up (SIGHUP); the command did not finish and its output is incomplete\n";
  ssize_t ignored = ::write(STDERR_FILENO, what, std::strlen(what));
  (void)ignored;
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
// Where a failure is reported: stderr, or for a rank started by `--nproc`, the file the
// launcher names, so that ranks failing alike print one line between them, not one each.
std::ostream& failure_stream() {
  static std::ofstream file;
  if (const char* path = std::getenv(ventral::cli::kRankErrorFileVariable); path && *path) {
    if (!file.is_open()) file.open(path, std::ios::app);
    if (file) return file;
  }
  return std::cerr;
}

// What an out-of-memory error says to change: what a run holds grows with the images, the batch
// and the model's width (and, for recurrent models, its steps).
constexpr const char* kOutOfMemoryFix =
    "use smaller images (data.resize, data.center_crop, data.image_size), smaller batches (train.batch_size, "
    "--batch), or a narrower or shallower model (model.width, model.steps)";

}  // namespace

namespace {
// CLI11's wording for two mistakes, in the words the rest of ventral uses: "--limit: Value 1e3
// not in range 0 to 100000000" (1e3 is no decimal integer) and "--steps: At Most 1 required but
// received 2" (the option was given twice).
std::string plain_parse_error(const std::string& what) {
  const size_t colon = what.find(": ");
  if (colon == std::string::npos || what.compare(0, 2, "--") != 0) return what;
  const std::string option = what.substr(0, colon), rest = what.substr(colon + 2);
  const std::string value_word = "Value ", range_word = " not in range ";
  if (rest.rfind(value_word, 0) == 0 && rest.find(range_word) != std::string::npos) {
    const size_t at = rest.find(range_word);
    const std::string value = rest.substr(value_word.size(), at - value_word.size());
    const std::string range = rest.substr(at + range_word.size());  // every CLI::Range here is of integers
    if (!ventral::is_decimal_integer(value))
      return option + ": '" + value + "' is not a decimal integer (digits only, no leading zero, no exponent); give " + range;
    return option + ": " + value + " is out of range (" + range + ")";
  }
  if (rest.rfind("At Most 1 required but received ", 0) == 0) {
    const bool list = option == "--steps" || option == "--perturb" || option == "--family" || option == "--present";
    return option + ": given " + rest.substr(std::strlen("At Most 1 required but received ")) + " times; give it once" +
           (list ? " (a list goes in one value, e.g. 1:2,4)" : "");
  }
  return what;
}
}  // namespace

int main(int argc, char** argv) {
  for (int sig : {SIGINT, SIGTERM, SIGHUP})
    if (std::signal(sig, on_stop_signal) == SIG_IGN) std::signal(sig, SIG_IGN);  // nohup stays nohup
  // Every training step frees and re-allocates megabyte-sized activations. glibc's defaults
  // serve them with fresh mmaps or trim them back to the OS, so each step page-faults its
  // memory in again: cortical BLT's `ventral bench` took 324k minor faults and 0.76 s of
  // system time, 86k and 0.23 s with these limits (same peak memory).
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  CLI::App app{
      "ventral: train, evaluate and compare feed-forward and recurrent vision models.\n"
      "Run `ventral <command> --help` for the options of a command."};
  app.name("ventral");
  app.require_subcommand(1);
  app.set_version_flag("--version", "ventral 0.1.0");
  ventral::cli::add_config_command(app);
  ventral::cli::add_data_command(app);
  ventral::cli::add_models_command(app);
  ventral::cli::add_train_command(app);
  ventral::cli::add_eval_command(app);
  ventral::cli::add_perturb_command(app);
  ventral::cli::add_compare_command(app);
  ventral::cli::add_bench_command(app);
  ventral::cli::add_export_command(app);
  // An empty value (`--run-dir ''`, a variable that was not set) is a mistake in every option:
  // taken as is, it meant the default and the command did something other than was asked.
  const CLI::Validator not_empty(
      [](std::string& text) { return text.empty() ? std::string("an empty value (give one, or leave the option out)") : ""; },
      "");
  // Integers are decimal: CLI11 reads 010 as 8 (octal) and 0x10 as 16, so `--limit 010` scored
  // 8 images and `--seed 010` was seed 8.
  const CLI::Validator decimal(
      [](std::string& text) {
        return ventral::is_decimal_integer(text) || text.empty() ? std::string()
                                     : "'" + ventral::printable(text) + "' is not a decimal integer (digits only, no "
                                       "leading zero, no 0x)";
      },
      "");
  // A line break or other control character in a path or value: files named with one, and
  // messages and results that print it split over lines (config values refuse them too).
  const CLI::Validator plain_text(
      [](std::string& text) {
        const auto c = std::find_if(text.begin(), text.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f; });
        return c == text.end() ? std::string()
                               : "'" + ventral::printable(text) + "' holds a control character (a tab, line break or "
                                 "other); give the value without it";
      },
      "");
  for (CLI::App* command : app.get_subcommands({}))
    for (CLI::Option* option : command->get_options())
      if (option->get_type_size_max() > 0 && option->get_expected_max() > 0) {
        option->check(not_empty);
        option->check(plain_text);
        const std::string type = option->get_type_name();
        if (type.rfind("INT", 0) == 0 || type.rfind("UINT", 0) == 0) option->check(decimal);
      }

  try {
    std::string names;
    bool known = false;
    for (const auto* sub : app.get_subcommands({})) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
      known |= argc > 1 && sub->get_name() == argv[1];
    }
    if (argc > 1 && argv[1][0] != '-' && !known) {
      throw ventral::InputError(std::string("unknown command '") + argv[1] + "' (commands: " + names + ")");
    }
    app.parse(argc, argv);
  } catch (const ventral::cli::ExitStatus& e) {
    return e.code;
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    failure_stream() << "error: " << plain_parse_error(e.what()) << " (see ventral --help)\n";
    return 2;
  } catch (const ventral::InputError& e) {
    // One line whatever a file name or a file's bytes held (a newline, a NUL).
    failure_stream() << "error: " << ventral::printable(e.what(), 20000) << "\n";
    return 2;
  } catch (const ventral::StoppedError& e) {
    failure_stream() << e.what() << "\n";
    return e.status();
  } catch (const c10::Error& e) {
    // Running out of memory is the environment (or a size asked for), not a bug.
    const std::string what = e.what_without_backtrace();
    if (what.find("can't allocate memory") != std::string::npos) {
      const size_t at = what.find("you tried to allocate");
      const std::string detail =
          at == std::string::npos ? "" : " (" + what.substr(at, what.find_first_of(".\n", at) - at) + ")";
      failure_stream() << "error: out of memory" << detail
                << "; " << kOutOfMemoryFix << "\n";
      return 2;
    }
    // A batch of one image reaching a 1x1 feature map leaves a training batch norm one value
    // per channel: the batch size (or the image size), not a bug.
    if (what.find("Expected more than 1 value per channel when training") != std::string::npos) {
      const size_t at = what.find("got input size");
      failure_stream() << "error: a batch norm in training mode sees one value per channel ("
                       << (at == std::string::npos ? std::string("a batch of 1 image") : what.substr(at, what.find('\n', at) - at))
                       << "): use batches of at least 2 images (train.batch_size, bench --batch; a last batch of 1 "
                          "counts) or larger images (data.image_size)\n";
      return 2;
    }
    failure_stream() << "internal error: " << what << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    failure_stream() << "error: out of memory; " << kOutOfMemoryFix << "\n";
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {
    // A path the user gave that the system refuses (a link loop, a name too long, a permission):
    // the environment, not a bug; the paths and the system's reason are in the message.
    std::string where = e.path1().empty() ? "" : ventral::printable(e.path1().string()) + ": ";
    failure_stream() << "error: " << where << e.code().message() << " (" << ventral::printable(e.what()) << ")\n";
    return 2;
  } catch (const std::exception& e) {
    failure_stream() << "internal error: " << e.what() << "\n";
    return 1;
  }
  // What went to standard output must have arrived (`ventral config > /dev/full` reported
  // success with nothing written).
  std::cout.flush();
  errno = 0;
  if (!std::cout || std::fflush(stdout) != 0 || std::ferror(stdout)) {
    failure_stream() << "error: cannot write to standard output" << (errno ? std::string(" (") + std::strerror(errno) + ")" : "")
                     << "\n";
    return 2;
  }
  return 0;
}
