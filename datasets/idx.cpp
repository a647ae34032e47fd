// IDX reader (MNIST, Fashion-MNIST). The header is validated against the actual file size
// before anything is allocated from it, so a hostile header cannot trigger a huge allocation.
#include <cstring>

#include "core/error.hpp"
#include "core/io.hpp"
#include "datasets/dataset.hpp"

namespace ventral {

namespace {

struct IdxFile {
  std::vector<uint32_t> dims;
  std::vector<unsigned char> bytes;
  size_t offset = 0;  // start of the data
};

void check_magic(const std::string& path, const unsigned char* b, size_t expected_dims) {
  if (b[0] != 0 || b[1] != 0 || b[2] != 0x08 || b[3] != expected_dims) {
    char magic[16];
    std::snprintf(magic, sizeof magic, "%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
    throw InputError(path + ": bad IDX magic 0x" + magic + " (expected 0x000008" +
                     (expected_dims == 3 ? "03 for images" : "01 for labels") + ")");
  }
}

IdxFile parse_idx(const std::string& path, size_t expected_dims) {
  IdxFile f;
  // A gzip stream is inflated only as far as the header says the file needs.
  f.bytes = read_maybe_gzip(path, size_t(4) << 30, [&](const unsigned char* b, size_t n) -> size_t {
    if (n < 4) return 0;
    check_magic(path, b, expected_dims);
    const size_t dims = expected_dims, header = 4 + 4 * dims;
    if (n < header) return 0;
    unsigned __int128 total = header;
    unsigned __int128 count = 1;
    for (size_t d = 0; d < dims; ++d) {
      const unsigned char* p = b + 4 + 4 * d;
      count *= (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
    }
    total += count;
    return total > (unsigned __int128)(size_t(4) << 30) ? size_t(4) << 30 : static_cast<size_t>(total);
  });
  const auto& b = f.bytes;
  if (b.size() < 4)
    throw InputError(path + ": truncated IDX file (" + std::to_string(b.size()) + " bytes, no header)");
  check_magic(path, b.data(), expected_dims);
  size_t header = 4 + 4 * expected_dims;
  if (b.size() < header) throw InputError(path + ": truncated IDX header");
  unsigned __int128 total = 1;
  for (size_t d = 0; d < expected_dims; ++d) {
    const unsigned char* p = b.data() + 4 + 4 * d;
    uint32_t v = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
    f.dims.push_back(v);
    total *= v;
  }
  size_t actual = b.size() - header;
  if (total != actual) {
    std::string dims;
    for (auto d : f.dims) dims += (dims.empty() ? "" : "x") + std::to_string(d);
    throw InputError(path + ": IDX header declares " + dims + " (" +
                     std::to_string(static_cast<unsigned long long>(
                         total > ~0ULL ? ~0ULL : static_cast<unsigned long long>(total))) +
                     " bytes) but the file holds " + std::to_string(actual) +
                     (total > actual ? " (truncated or corrupt header)" : " (trailing data)"));
  }
  f.offset = header;
  return f;
}

}  // namespace

Dataset read_idx(const std::string& images_path, const std::string& labels_path,
                 std::vector<std::string> classes) {
  IdxFile images = parse_idx(images_path, 3);
  IdxFile labels = parse_idx(labels_path, 1);
  if (images.dims[0] != labels.dims[0])
    throw InputError(images_path + ": holds " + std::to_string(images.dims[0]) + " images but " +
                     labels_path + " holds " + std::to_string(labels.dims[0]) + " labels");
  if (images.dims[1] == 0 || images.dims[2] == 0)
    throw InputError(images_path + ": images have zero size");
  Dataset d;
  d.height = images.dims[1];
  d.width = images.dims[2];
  d.channels = 1;
  d.pixels.assign(images.bytes.begin() + images.offset, images.bytes.end());
  d.labels.reserve(labels.dims[0]);
  for (size_t i = 0; i < labels.dims[0]; ++i) {
    int64_t l = labels.bytes[labels.offset + i];
    if (l >= static_cast<int64_t>(classes.size()))
      throw InputError(labels_path + ": label " + std::to_string(l) + " at index " +
                       std::to_string(i) + " is outside 0.." + std::to_string(classes.size() - 1));
    d.labels.push_back(l);
  }
  d.classes = std::move(classes);
  return d;
}

}  // namespace ventral
