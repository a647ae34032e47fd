// libFuzzer target: weights files as Python's torch.save writes them (a zip holding data.pkl and
// the tensor records), read by read_state_dict's own unpickler with its bounds checks. Every
// tensor it returns is read in full, so a view past its storage would be caught by ASan.
#include "fuzz_common.hpp"
#include "inference/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ventral;
  const auto path = fuzz::scratch() / "weights.pt";
  fuzz::write(path, data, size);
  fuzz::expect_input_error_at_most([&] {
    for (const auto& [name, t] : read_state_dict(path.string())) {
      if (name.empty()) std::abort();
      if (t.numel() > 0) (void)t.to(torch::kDouble).sum().item<double>();
    }
  });
  return 0;
}
