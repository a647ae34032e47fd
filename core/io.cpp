#include "core/io.hpp"

#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.hpp"

namespace ventral {

namespace fs = std::filesystem;

void make_directories(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec || !fs::is_directory(path))
    throw InputError("cannot create the folder " + path + ": " +
                     (ec ? ec.message() : std::string("a file of that name is in the way")));
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  fs::path target(path);
  if (target.has_parent_path()) make_directories(target.parent_path().string());
  std::string tmp = path + ".tmp." + std::to_string(std::random_device{}());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError("cannot write " + path + ": cannot create " + tmp);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw InputError("cannot write " + path + " (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw InputError("cannot write " + path + ": " + ec.message());
  }
}

std::vector<unsigned char> read_file(const std::string& path) {
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) throw InputError(path + ": no such file");
  if (fs::is_directory(status)) throw InputError(path + ": is a folder, not a file");
  if (!fs::is_regular_file(status)) throw InputError(path + ": is not a regular file (a pipe or device?); give a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open for reading");
  std::vector<unsigned char> bytes(fs::file_size(path));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!in) throw InputError(path + ": read failed");
  return bytes;
}

std::vector<unsigned char> read_maybe_gzip(const std::string& path, size_t max_bytes) {
  std::vector<unsigned char> raw = read_file(path);
  if (raw.size() < 2 || raw[0] != 0x1f || raw[1] != 0x8b) return raw;

  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw std::runtime_error("zlib init failed");
  zs.next_in = raw.data();
  zs.avail_in = static_cast<uInt>(raw.size());
  std::vector<unsigned char> out;
  // Grow with the data actually inflated: a lying size never triggers a huge allocation.
  out.resize(std::min<size_t>(max_bytes, raw.size() * 4 + 1024));
  int rc = Z_OK;
  while (true) {
    if (zs.total_out == out.size()) {
      if (out.size() >= max_bytes)
        throw InputError(path + ": gzip data inflates beyond " + std::to_string(max_bytes) + " bytes");
      out.resize(std::min(max_bytes, out.size() * 2));
    }
    zs.next_out = out.data() + zs.total_out;
    zs.avail_out = static_cast<uInt>(std::min<size_t>(out.size() - zs.total_out, 1u << 30));
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK || (zs.avail_in == 0 && zs.avail_out != 0)) {
      inflateEnd(&zs);
      throw InputError(path + ": corrupt or truncated gzip data");
    }
  }
  out.resize(zs.total_out);
  inflateEnd(&zs);
  return out;
}

}  // namespace ventral
