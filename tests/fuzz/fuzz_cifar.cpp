// libFuzzer target: the CIFAR-10 binary batch reader.
#include "datasets/dataset.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ventral;
  const auto batch = fuzz::scratch() / "data_batch_1.bin";
  fuzz::write(batch, data, size);
  fuzz::expect_input_error_at_most([&] {
    Dataset d = read_cifar10({batch.string()}, {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
    for (int64_t label : d.labels)
      if (label < 0 || label > 9) std::abort();
  });
  return 0;
}
