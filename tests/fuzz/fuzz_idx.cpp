// libFuzzer target: the IDX reader (raw and gzip) on a fuzzed images file next to a valid labels file.
#include "datasets/dataset.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ventral;
  const auto images = fuzz::scratch() / "images", labels = fuzz::scratch() / "labels";
  static const bool labels_written = [&] {
    const uint8_t l[] = {0, 0, 8, 1, 0, 0, 0, 2, 0, 1};  // 2 labels: 0, 1
    fuzz::write(labels, l, sizeof l);
    return true;
  }();
  (void)labels_written;
  fuzz::write(images, data, size);
  fuzz::expect_input_error_at_most([&] {
    Dataset d = read_idx(images.string(), labels.string(), {"a", "b"});
    if (d.pixels.size() != d.size() * d.image_bytes()) std::abort();  // what was read is consistent
  });
  // The same bytes as the labels file.
  fuzz::expect_input_error_at_most([&] { read_idx(labels.string(), images.string(), {"a", "b"}); });
  return 0;
}
