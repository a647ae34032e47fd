// libFuzzer target: the YAML config parser and key=value overrides. The input is a config
// file, optionally followed by a NUL byte and one override per line.
#include "core/config.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ventral;
  const auto path = fuzz::scratch() / "config.yaml";
  const std::vector<std::string> overrides = fuzz::write_yaml_with_overrides(path, data, size);
  fuzz::expect_input_error_at_most([&] {
    Config cfg = Config::load(path.string(), overrides);
    // A config that loads can be written and read back to the same values.
    const auto copy = fuzz::scratch() / "copy.yaml";
    cfg.save(copy.string());
    if (!Config::load(copy.string()).differences(cfg, {}).empty()) std::abort();
  });
  return 0;
}
