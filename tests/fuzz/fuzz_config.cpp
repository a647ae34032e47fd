// libFuzzer target: the YAML config parser and key=value overrides. The input is a config
// file, optionally followed by a NUL byte and one override per line.
#include <cstring>
#include <sstream>

#include "core/config.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ventral;
  const uint8_t* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t yaml_size = nul ? static_cast<size_t>(nul - data) : size;
  const auto path = fuzz::scratch() / "config.yaml";
  fuzz::write(path, data, yaml_size);
  std::vector<std::string> overrides;
  if (nul) {
    std::istringstream lines(std::string(reinterpret_cast<const char*>(nul + 1), size - yaml_size - 1));
    for (std::string line; std::getline(lines, line);) overrides.push_back(line);
  }
  fuzz::expect_input_error_at_most([&] {
    Config cfg = Config::load(path.string(), overrides);
    // A config that loads can be written and read back to the same values.
    const auto copy = fuzz::scratch() / "copy.yaml";
    cfg.save(copy.string());
    if (!Config::load(copy.string()).differences(cfg, {}).empty()) std::abort();
  });
  return 0;
}
