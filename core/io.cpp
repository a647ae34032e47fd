#include "core/io.hpp"
#include "core/text.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

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
  if (ec || !fs::is_directory(path)) {
    // Name the file in the way ("out.pt/x" under a file out.pt), not only "not a directory".
    for (fs::path p(path); !p.empty() && p != p.parent_path(); p = p.parent_path())
      if (std::error_code e; fs::exists(p, e) && !fs::is_directory(p, e))
        throw InputError("cannot create the folder " + path + ": " + p.string() + " is a file, not a folder");
    throw InputError("cannot create the folder " + path + ": " +
                     (ec ? ec.message() : std::string("a file of that name is in the way")));
  }
}

namespace {

// "cannot write PATH: no space left on device" from errno.
std::string system_reason(int error) {
  std::string why = std::strerror(error);
  if (!why.empty()) why[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(why[0])));
  if (error == ENOSPC || error == EDQUOT) why += " (the disk is full: free space or write elsewhere)";
  return why;
}

// Writes all of `data` to `fd`; the errno of the first failure, or 0.
int write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

namespace {
// The temporary files being written, for remove_unfinished_files(): a fixed table of pointers
// (a signal handler may neither allocate nor lock). A write finding the table full keeps its
// temporary file out of it; a signal would then leave that one behind.
constexpr size_t kUnfinishedSlots = 64;
std::atomic<char*> g_unfinished[kUnfinishedSlots];

// Registers `path` while it lives.
class Unfinished {
 public:
  explicit Unfinished(const std::string& path) : copy_(::strdup(path.c_str())) {
    for (auto& slot : g_unfinished) {
      char* expected = nullptr;
      if (copy_ && slot.compare_exchange_strong(expected, copy_)) {
        slot_ = &slot;
        return;
      }
    }
  }
  ~Unfinished() {
    if (slot_) slot_->store(nullptr);
    std::free(copy_);
  }
  Unfinished(const Unfinished&) = delete;
  Unfinished& operator=(const Unfinished&) = delete;

 private:
  char* copy_;
  std::atomic<char*>* slot_ = nullptr;
};
}  // namespace

void remove_unfinished_files() noexcept {
  for (auto& slot : g_unfinished)
    if (const char* path = slot.load()) ::unlink(path);
}

void require_replaceable(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(path, ec);
  if (fs::exists(st) && !fs::is_regular_file(st))
    throw InputError("cannot write " + path + ": it exists and is not a regular file (" +
                     (fs::is_directory(st) ? "a folder" : fs::is_symlink(st) ? "a symbolic link" : "a device or pipe") +
                     "); give a file path");
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  fs::path target(path);
  require_replaceable(path);  // the rename would replace whatever is there: never a device, a pipe or a folder
  if (target.has_parent_path()) make_directories(target.parent_path().string());
  // Hidden, so that a file left by a kill between its creation and the rename is skipped by
  // anything that lists the folder as data (ventral's image folders skip dot files).
  const std::string tmp = (target.parent_path() / ("." + target.filename().string() + ".tmp." +
                                                   std::to_string(std::random_device{}()))).string();
  const Unfinished registered(tmp);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw InputError("cannot write " + path + ": cannot create " + tmp + ": " + system_reason(errno));
  // The bytes reach the disk before the rename makes them the file: a crash or power loss
  // leaves the old file or the new one, never a torn one.
  int error = write_all(fd, contents.data(), contents.size());
  if (!error && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && !error) error = errno;
  if (error) {
    ::unlink(tmp.c_str());
    throw InputError("cannot write " + path + ": " + system_reason(error));
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    ::unlink(tmp.c_str());
    throw InputError("cannot write " + path + ": " + ec.message());
  }
  // And the rename itself is durable once the folder is synced (best effort: not every file
  // system lets a folder be opened for that).
  const std::string folder = target.has_parent_path() ? target.parent_path().string() : ".";
  if (const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void append_file(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw InputError("cannot append to " + path + ": " + system_reason(errno));
  int error = write_all(fd, text.data(), text.size());
  if (::close(fd) != 0 && !error) error = errno;
  if (error) throw InputError("cannot append to " + path + ": " + system_reason(error));
}

std::vector<unsigned char> read_file(const std::string& path) {
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) {
    if (ec && ec != std::errc::no_such_file_or_directory)  // a link loop, a folder without permission, ...
      throw InputError(printable(path) + ": cannot read (" + ec.message() + ")");
    throw InputError(printable(path) + ": no such file");
  }
  if (fs::is_directory(status)) throw InputError(printable(path) + ": is a folder, not a file");
  if (!fs::is_regular_file(status)) throw InputError(printable(path) + ": is not a regular file (a pipe or device?); give a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(printable(path) + ": cannot open for reading");
  std::vector<unsigned char> bytes(fs::file_size(path));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!in) throw InputError(printable(path) + ": read failed");
  return bytes;
}

std::vector<unsigned char> read_maybe_gzip(const std::string& path, size_t max_bytes, const SizeFromHeader& needed) {
  std::vector<unsigned char> raw = read_file(path);
  if (raw.size() < 2 || raw[0] != 0x1f || raw[1] != 0x8b) return raw;

  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw std::runtime_error("zlib init failed");
  zs.next_in = raw.data();
  zs.avail_in = static_cast<uInt>(raw.size());
  std::vector<unsigned char> out;
  // Grow with the data actually inflated: a lying size never triggers a huge allocation. Until
  // the header is known, inflate in small pieces; once it is, never more than it declares (+1
  // byte, to tell trailing data from the end): a gzip bomb stops there.
  size_t limit = max_bytes, declared = 0, earlier = 0;  // earlier: what previous gzip members inflated to
  const auto produced = [&] { return earlier + zs.total_out; };
  out.resize(std::min<size_t>(max_bytes, raw.size() * 4 + 1024));
  int rc = Z_OK;
  while (true) {
    if (produced() == out.size()) {
      if (out.size() >= limit) {
        inflateEnd(&zs);
        throw InputError(printable(path) + ": gzip data inflates beyond " +
                         (declared ? "the " + std::to_string(declared) + " bytes its header declares (trailing data, or a gzip bomb)"
                                   : std::to_string(max_bytes) + " bytes"));
      }
      out.resize(std::min(limit, out.size() * 2));
    }
    zs.next_out = out.data() + produced();
    const size_t piece = needed && !declared ? 4096 : size_t{1} << 30;
    zs.avail_out = static_cast<uInt>(std::min(out.size() - produced(), piece));
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      // Another gzip member follows (`cat a.gz b.gz` is one valid file, as gzip -d reads it), or
      // else bytes that are no gzip data: refused rather than ignored.
      if (zs.avail_in == 0) break;
      if (zs.avail_in < 2 || zs.next_in[0] != 0x1f || zs.next_in[1] != 0x8b) {
        const size_t extra = zs.avail_in;
        inflateEnd(&zs);
        throw InputError(printable(path) + ": " + std::to_string(extra) +
                         " bytes of trailing data after the gzip stream (a damaged or appended file)");
      }
      earlier += zs.total_out;
      if (inflateReset(&zs) != Z_OK) {
        inflateEnd(&zs);
        throw std::runtime_error("zlib reset failed");
      }
      continue;
    }
    if (rc != Z_OK || (zs.avail_in == 0 && zs.avail_out != 0)) {
      inflateEnd(&zs);
      throw InputError(printable(path) + ": corrupt or truncated gzip data");
    }
    if (needed && !declared) {
      try {  // the header may already be refused
        declared = needed(out.data(), produced());
      } catch (...) {
        inflateEnd(&zs);
        throw;
      }
      if (declared) {
        limit = std::min(max_bytes, declared + 1);
        if (out.size() > limit) out.resize(std::max<size_t>(limit, produced()));
      }
    }
  }
  out.resize(produced());
  inflateEnd(&zs);
  return out;
}

namespace {

uint32_t le32(const unsigned char* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }
uint16_t le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

}  // namespace

std::map<std::string, uint64_t> verify_zip_checksums(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open (" + std::strerror(errno) + ")");
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(in.tellg());
  auto read_at = [&](uint64_t offset, size_t n) {
    auto past_end = [&] {
      return InputError(path + ": damaged zip archive (an entry or its directory runs past the end of the file)");
    };
    if (offset > size || n > size - offset) throw past_end();  // before allocating what a header claims
    std::vector<unsigned char> buf(n);
    in.clear();
    in.seekg(static_cast<std::streamoff>(offset));
    if (!in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(n))) throw past_end();
    return buf;
  };
  if (size < 4 || read_at(0, 4) != std::vector<unsigned char>{'P', 'K', 3, 4})
    throw InputError(path + ": not a zip archive (checkpoints and torch.save files are)");
  // The end-of-central-directory record: the last 22 bytes, or up to 64 KiB earlier behind a comment.
  const uint64_t tail_size = std::min<uint64_t>(size, 22 + 65535);
  const auto tail = read_at(size - tail_size, static_cast<size_t>(tail_size));
  int64_t eocd = -1;
  for (int64_t i = static_cast<int64_t>(tail_size) - 22; i >= 0; --i)
    if (le32(&tail[static_cast<size_t>(i)]) == 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd < 0) throw InputError(path + ": damaged zip archive (no end-of-directory record: truncated?)");
  const unsigned char* e = &tail[static_cast<size_t>(eocd)];
  // The record (and its comment) ends the file: bytes after it were appended or written over it.
  if (const uint64_t end = static_cast<uint64_t>(eocd) + 22 + le16(e + 20); end > tail_size)
    throw InputError(path + ": damaged zip archive (its end record runs past the end of the file)");
  else if (end < tail_size)
    throw InputError(path + ": damaged zip archive (" + std::to_string(tail_size - end) +
                     " bytes after its end record: appended to, or two files run together?)");
  const uint32_t entries = le16(e + 10), dir_size = le32(e + 12), dir_offset = le32(e + 16);
  if (entries == 0xffff || dir_size == 0xffffffff || dir_offset == 0xffffffff) return {};  // zip64
  const auto dir = read_at(dir_offset, dir_size);
  std::map<std::string, uint64_t> sizes;
  size_t at = 0;
  for (uint32_t k = 0; k < entries; ++k) {
    if (at + 46 > dir.size() || le32(&dir[at]) != 0x02014b50)
      throw InputError(path + ": damaged zip archive (its directory is cut short or overwritten)");
    const unsigned char* d = &dir[at];
    const uint16_t method = le16(d + 10), name_len = le16(d + 28), extra_len = le16(d + 30), comment_len = le16(d + 32);
    const uint32_t crc = le32(d + 16), stored_size = le32(d + 20), header = le32(d + 42);
    if (at + 46 + name_len > dir.size())
      throw InputError(path + ": damaged zip archive (its directory is cut short or overwritten)");
    const std::string name(reinterpret_cast<const char*>(d + 46), name_len);
    at += 46u + name_len + extra_len + comment_len;
    sizes[name] = le32(d + 24);
    if (header == 0xffffffff) continue;  // zip64 offset: torch writes none below 4 GiB
    const auto local = read_at(header, 30);
    // Names are stored twice (directory and entry) and no checksum covers them: a damaged name
    // would send LibTorch looking for a record that is not there (its TorchScript loader then
    // aborts the process; found by fuzz_checkpoint).
    if (le32(local.data()) != 0x04034b50 || le16(&local[26]) != name_len ||
        read_at(header + 30, name_len) != std::vector<unsigned char>(name.begin(), name.end()))
      throw InputError(path + ": damaged zip archive (entry " + name + " does not match its directory)");
    const uint64_t offset = header + 30ull + le16(&local[26]) + le16(&local[28]);
    const uint32_t unpacked_size = le32(d + 24);
    if (stored_size == 0xffffffff || unpacked_size == 0xffffffff) continue;
    uLong sum = crc32(0L, Z_NULL, 0);
    if (method == 0) {
      for (uint64_t left = stored_size, from = offset; left > 0;) {  // 1 MiB at a time: entries can be large
        const size_t n = static_cast<size_t>(std::min<uint64_t>(left, 1 << 20));
        const auto piece = read_at(from, n);
        sum = crc32(sum, piece.data(), static_cast<uInt>(n));
        from += n, left -= n;
      }
    } else if (method == 8) {  // deflate: TorchScript's code records
      if (unpacked_size > (64u << 20)) continue;  // torch deflates only small code records; not worth the memory
      std::vector<unsigned char> packed = read_at(offset, stored_size), plain(std::max<uint32_t>(unpacked_size, 1));
      z_stream z{};
      if (inflateInit2(&z, -MAX_WBITS) != Z_OK) throw InputError(path + ": cannot inflate " + name);
      z.next_in = packed.data(), z.avail_in = static_cast<uInt>(packed.size());
      z.next_out = plain.data(), z.avail_out = unpacked_size;
      const int status = inflate(&z, Z_FINISH);
      const bool whole = status == Z_STREAM_END && z.total_out == unpacked_size;
      inflateEnd(&z);
      if (!whole) throw InputError(path + ": damaged zip archive (entry " + name + " does not inflate to its size)");
      sum = crc32(sum, plain.data(), unpacked_size);
    } else {
      continue;  // another method: neither torch nor ventral writes one
    }
    if (static_cast<uint32_t>(sum) != crc)
      throw InputError(path + ": damaged: the checksum of " + name +
                       " does not match (the file was altered or corrupted after it was written)");
  }
  // The end record's count must account for the whole directory: a smaller count would hide
  // entries from this check and from the reader, which then misses records (fuzz_checkpoint).
  if (at != dir.size())
    throw InputError(path + ": damaged zip archive (its directory holds more than its end record counts)");
  return sizes;
}

}  // namespace ventral
