// libFuzzer target: decoding one image file of an image folder (OpenCV's decoders behind
// ventral's folder reader), with a valid image of the other class beside it.
#include <opencv2/imgcodecs.hpp>

#include "datasets/dataset.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ventral;
  const auto root = fuzz::scratch() / "folder";
  static const bool ok_written = [&] {
    std::filesystem::create_directories(root / "b");
    cv::imwrite((root / "b" / "ok.png").string(), cv::Mat(8, 8, CV_8UC1, cv::Scalar(128)));
    return true;
  }();
  (void)ok_written;
  // The extension picks no decoder (OpenCV sniffs the bytes), so one name covers every format.
  fuzz::write(root / "a" / "image.png", data, size);
  fuzz::expect_input_error_at_most([&] {
    Dataset d = read_image_folder(root.string(), {1, 28});
    if (d.height != 28 || d.width != 28 || d.channels != 1) std::abort();
  });
  return 0;
}
