#pragma once
// Shared by the libFuzzer targets: the input is written to a file (the readers take paths), and
// an InputError is the documented answer to bad input. Anything else escaping a reader (another
// exception, a crash, a sanitizer report, a hang) is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace ventral::fuzz {

/// A scratch folder of this process (in /dev/shm when it exists: no disk traffic).
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    auto d = base / ("ventral_fuzz_" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline void write(const std::filesystem::path& path, const uint8_t* data, size_t size) {
  std::filesystem::create_directories(path.parent_path());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
}

/// The input layout of the config and experiment targets: a YAML file, written to `path`,
/// optionally followed by a NUL byte and one key=value override per line (returned).
inline std::vector<std::string> write_yaml_with_overrides(const std::filesystem::path& path, const uint8_t* data,
                                                          size_t size) {
  const uint8_t* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t yaml_size = nul ? static_cast<size_t>(nul - data) : size;
  write(path, data, yaml_size);
  std::vector<std::string> overrides;
  if (nul) {
    std::istringstream lines(std::string(reinterpret_cast<const char*>(nul + 1), size - yaml_size - 1));
    for (std::string line; std::getline(lines, line);) overrides.push_back(line);
  }
  return overrides;
}

/// Runs `f`; InputError is the expected outcome of bad input and is swallowed.
template <class F>
void expect_input_error_at_most(F&& f) {
  try {
    f();
  } catch (const InputError&) {
  }
}

}  // namespace ventral::fuzz
