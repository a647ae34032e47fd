#include "core/progress.hpp"

#include <atomic>

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace ventral {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

bool Progress::interactive() { return isatty(STDERR_FILENO); }

Progress::Progress(std::string label, int64_t total, std::string unit, int64_t line_every)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), line_every_(line_every),
      tty_(interactive()), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done, const std::string& extra) {
  done_ += done;
  ++updates_;
  auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ > std::chrono::milliseconds(100)) draw(false, extra), last_draw_ = now;
  } else if (updates_ % line_every_ == 0 && done_ < total_) {  // finish() prints the last line
    draw(false, extra);
  }
}

void Progress::finish(const std::string& extra) { draw(true, extra); }

namespace {
std::atomic<bool> g_silenced{false};
}

void Progress::silence(bool quiet) { g_silenced = quiet; }

void Progress::draw(bool final, const std::string& extra) {
  if (g_silenced) return;
  double secs = elapsed_seconds();
  double rate = secs > 0 ? done_ / secs : 0;
  double eta = rate > 0 ? (total_ - done_) / rate : NAN;
  char line[512];
  if (tty_) {
    const int width = 24;
    int filled = total_ > 0 ? static_cast<int>(width * std::min<double>(1.0, double(done_) / total_)) : width;
    std::string bar(filled, '#');
    bar += std::string(width - filled, '.');
    std::snprintf(line, sizeof line, "\r%s [%s] %lld/%lld %.0f %s/s %s %s %s\033[K", label_.c_str(), bar.c_str(),
                  (long long)done_, (long long)total_, rate, unit_.c_str(), extra.c_str(),
                  final ? "in" : "ETA", format_duration(final ? secs : eta).c_str());
    std::fputs(line, stderr);
    if (final) std::fputc('\n', stderr);
  } else {
    std::snprintf(line, sizeof line, "%s %lld/%lld %.0f %s/s %s %s %s\n", label_.c_str(), (long long)done_,
                  (long long)total_, rate, unit_.c_str(), extra.c_str(), final ? "in" : "ETA",
                  format_duration(final ? secs : eta).c_str());
    std::fputs(line, stderr);
  }
  std::fflush(stderr);
}

}  // namespace ventral
