#pragma once
/// Progress of long work: a redrawn bar with rate and ETA on a terminal, plain lines
/// otherwise (logs, CI).
#include <chrono>
#include <cstdint>
#include <string>

namespace ventral {

class Progress {
 public:
  /// `label` prefixes every line; `total` units (images, batches); `unit` names them.
  /// Off a terminal a line is printed every `line_every` updates (and at the end).
  Progress(std::string label, int64_t total, std::string unit, int64_t line_every = 50);
  /// Advances by `done` units; `extra` (e.g. "loss 0.31 acc 91.2%") is shown after the rate.
  void update(int64_t done, const std::string& extra = "");
  /// Ends the bar (newline on a terminal, final line otherwise).
  void finish(const std::string& extra = "");
  double elapsed_seconds() const;
  /// Whether stderr is a terminal (bars) or not (plain lines).
  static bool interactive();
  /// Silences every Progress of this process (the ranks of a multi-process run but rank 0).
  static void silence(bool quiet);

 private:
  void draw(bool final, const std::string& extra);
  std::string label_, unit_;
  int64_t total_, done_ = 0, updates_ = 0, line_every_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

/// "1:02:03" or "4:05".
std::string format_duration(double seconds);

}  // namespace ventral
