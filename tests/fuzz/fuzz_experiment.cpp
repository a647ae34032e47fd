// libFuzzer target: experiment files (`ventral compare EXPERIMENT`): the YAML, every model's
// merged training config, model names and options, steps, perturbation lists and masking keys,
// all checked before any training starts. The input is the experiment file; a NUL byte starts
// key=value overrides, one per line.
#include "fuzz_common.hpp"
#include "study/experiment.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ventral;
  // The recipes the committed experiments name as `base:`, beside the fuzzed file.
  static const bool copied = [] {
    for (const auto& e : std::filesystem::directory_iterator(VENTRAL_CONFIGS_DIR))
      std::filesystem::copy_file(e.path(), fuzz::scratch() / e.path().filename(),
                                 std::filesystem::copy_options::overwrite_existing);
    return true;
  }();
  (void)copied;
  const auto path = fuzz::scratch() / "experiment.yaml";
  const std::vector<std::string> overrides = fuzz::write_yaml_with_overrides(path, data, size);
  fuzz::expect_input_error_at_most([&] {
    const Experiment x = load_experiment(path.string(), overrides);
    for (const auto& m : x.models) model_config(x, m);
  });
  return 0;
}
