#pragma once
// Shared test helpers: temporary folders, file writers and running the CLI.
#include <gtest/gtest.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace ventral::test {

/// A fresh folder under the system temp dir, removed with everything in it at scope end.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("ventral_test_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline void write_text(const std::string& path, const std::string& text) {
  write_bytes(path, std::vector<unsigned char>(text.begin(), text.end()));
}

/// The message of the InputError `f` throws, or "<no error>".
template <class Error, class F>
std::string error_text(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

struct RunResult {
  int status;
  std::string output;  // stdout and stderr together
};

/// Runs a shell command line and captures its output (stdout and stderr).
inline RunResult run_shell(const std::string& command) {
  std::string cmd = "( " + command + " ) 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  RunResult r{-1, ""};
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  int raw = pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  return r;
}

/// Runs the ventral binary with `args` (a shell-quoted string) and captures its output.
inline RunResult run_ventral(const std::string& args) { return run_shell(std::string(VENTRAL_BINARY) + " " + args); }

/// A parametrized test's name for a registry entry: GoogleTest allows only [A-Za-z0-9_].
inline std::string model_param_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

/// Big-endian IDX header for `dims` (ubyte data).
inline std::vector<unsigned char> idx_header(const std::vector<uint32_t>& dims) {
  std::vector<unsigned char> h = {0, 0, 0x08, static_cast<unsigned char>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) h.push_back(static_cast<unsigned char>(d >> s));
  return h;
}

}  // namespace ventral::test
