// libFuzzer target: list files (list:FILE, CSV path,label lines) through the list indexer and the
// streamed dataset built on it. Two images sit beside the list (img/a.png, img/b.png), so that
// well-formed lines can name real files; classes.txt is absent.
#include <opencv2/imgcodecs.hpp>

#include "datasets/dataset.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ventral;
  const auto root = fuzz::scratch() / "list";
  static const bool images_written = [&] {
    std::filesystem::create_directories(root / "img");
    cv::imwrite((root / "img" / "a.png").string(), cv::Mat(8, 8, CV_8UC1, cv::Scalar(40)));
    cv::imwrite((root / "img" / "b.png").string(), cv::Mat(6, 9, CV_8UC3, cv::Scalar(1, 2, 3)));
    return true;
  }();
  (void)images_written;
  fuzz::write(root / "l.csv", data, size);
  fuzz::expect_input_error_at_most([&] {
    LoadOptions options{3, 8};
    options.stream = "on";
    Dataset d = load_dataset("list:" + (root / "l.csv").string(), Split::Train, options);
    if (d.size() == 0 || d.size() != d.ids.size() || d.classes.empty()) std::abort();
    std::vector<uint8_t> scratch;
    for (size_t i = 0; i < d.size(); ++i) {
      if (d.labels[i] < 0 || static_cast<size_t>(d.labels[i]) >= d.classes.size()) std::abort();
      d.fetch(i, scratch);  // every line names a file that exists: an image, or an InputError
    }
  });
  return 0;
}
