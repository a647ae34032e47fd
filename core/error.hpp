#pragma once
/// Error types shared by every part of ventral.
#include <stdexcept>
#include <string>

namespace ventral {

/// Bad input from the user: a missing or malformed file, a wrong config key or value, a bad
/// command-line argument. The CLI prints "error: <what>" on one line and exits with status 2.
/// Everything else that throws is an internal failure (exit status 1).
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A model whose outputs are NaN or infinite (weights overflowing float32): an InputError for
/// imported weights; the trainer catches it in validation as divergence.
class NonFiniteOutputs : public InputError {
 public:
  using InputError::InputError;
};

/// A job that stopped before finishing, on purpose or not: interrupted by SIGINT/SIGTERM,
/// diverged, or stopped after train.stop_after_steps. The CLI prints the message on one line
/// and exits with `status` (130/143, 3, 75; see `ventral train --help`).
class StoppedError : public std::runtime_error {
 public:
  StoppedError(const std::string& message, int status) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

/// Throws InputError(message) when `condition` is false. Unlike assert, it stays in Release.
inline void require(bool condition, const std::string& message) {
  if (!condition) throw InputError(message);
}

}  // namespace ventral
