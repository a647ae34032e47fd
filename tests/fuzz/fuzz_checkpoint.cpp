// libFuzzer target: ventral's own checkpoints (a LibTorch archive: model, optimizer, training
// position, metrics, RNG state), loaded into the model they were written for. Checksums are
// verified first (core/io verify_zip_checksums), then LibTorch's reader and ventral's checks of
// names, shapes and dtypes.
#include "fuzz_common.hpp"
#include "inference/checkpoint.hpp"
#include "models/registry.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ventral;
  static ModelPtr model = [] {
    ModelOptions o;
    o.width = 2;  // as the corpus's checkpoints: cortical_b, width 2, synthetic (10 classes, 28 px gray)
    return create_model("cortical_b", o);
  }();
  const auto path = fuzz::scratch() / "last.pt";
  fuzz::write(path, data, size);
  fuzz::expect_input_error_at_most([&] { load_checkpoint(path.string(), *model, nullptr); });
  return 0;
}
