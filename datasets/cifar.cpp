// CIFAR-10 binary batches: each record is one label byte and 3072 pixel bytes (R, G, B planes
// of 32×32). Stored here interleaved (H × W × C, RGB) like every other dataset.
#include "core/error.hpp"
#include "core/io.hpp"
#include "datasets/dataset.hpp"

namespace ventral {

Dataset read_cifar10(const std::vector<std::string>& batch_paths, std::vector<std::string> classes) {
  constexpr size_t kSide = 32, kPlane = kSide * kSide, kRecord = 1 + 3 * kPlane;
  Dataset d;
  d.height = d.width = kSide;
  d.channels = 3;
  for (const auto& path : batch_paths) {
    auto bytes = read_file(path);
    if (bytes.empty())
      throw InputError(path + ": empty file (a CIFAR-10 batch holds records of " + std::to_string(kRecord) +
                       " bytes); download the binary version again (cifar-10-binary.tar.gz)");
    if (bytes.size() % kRecord != 0)
      throw InputError(path + ": truncated CIFAR-10 record (" + std::to_string(bytes.size()) +
                       " bytes is not a multiple of " + std::to_string(kRecord) + ")");
    size_t n = bytes.size() / kRecord;
    size_t base = d.pixels.size();
    d.pixels.resize(base + n * 3 * kPlane);
    for (size_t r = 0; r < n; ++r) {
      const unsigned char* rec = bytes.data() + r * kRecord;
      if (rec[0] >= classes.size())
        throw InputError(path + ": record " + std::to_string(r) + " has label " +
                         std::to_string(rec[0]) + ", expected 0.." + std::to_string(classes.size() - 1));
      d.labels.push_back(rec[0]);
      uint8_t* out = d.pixels.data() + base + r * 3 * kPlane;
      for (size_t p = 0; p < kPlane; ++p)
        for (size_t c = 0; c < 3; ++c) out[p * 3 + c] = rec[1 + c * kPlane + p];
    }
  }
  d.classes = std::move(classes);
  return d;
}

}  // namespace ventral
