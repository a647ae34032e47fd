#pragma once
/// File helpers: atomic writes so that a crash never leaves a torn result or checkpoint.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace ventral {

/// InputError "cannot write PATH: it exists and is not a regular file (a folder ...)" when a
/// rename onto `path` would replace a folder, a link, a device or a pipe.
void require_replaceable(const std::string& path);

/// Writes `contents` to `path` via a temporary file in the same folder, fsync and a rename, so
/// the file is the old one or the new one whatever happens (kill -9, power loss, a full disk).
/// InputError "cannot write PATH: <reason>" (e.g. "no space left on device") on failure, and
/// the old file is untouched.
void write_file_atomic(const std::string& path, const std::string& contents);
/// Unlinks the temporary files write_file_atomic is writing at this moment: for a signal
/// handler (async-signal-safe), so that a file cut short by Ctrl-C leaves nothing behind.
void remove_unfinished_files() noexcept;
/// Appends `text` to `path` (created if missing); InputError naming the path and the reason.
void append_file(const std::string& path, const std::string& text);
/// Creates the folder `path` and its parents; InputError naming it, and why, when that is not
/// possible (a file in the way, no permission, a read-only file system).
void make_directories(const std::string& path);
/// Reads a whole file; InputError naming the path when it cannot be opened.
std::vector<unsigned char> read_file(const std::string& path);
/// Given the first `n` bytes of a file, the total size its header says it has, or 0 while the
/// header is incomplete (it may throw InputError for a header it refuses).
using SizeFromHeader = std::function<size_t(const unsigned char* data, size_t n)>;
/// Reads a file, transparently inflating gzip (detected by its magic bytes). A corrupt gzip
/// stream is an InputError naming the path. `max_bytes` bounds the inflated size; with
/// `needed`, inflation also stops (InputError) one byte past the size the header declares, so a
/// gzip bomb is refused before it is inflated beyond what the file needs.
std::vector<unsigned char> read_maybe_gzip(const std::string& path, size_t max_bytes = size_t(4) << 30,
                                           const SizeFromHeader& needed = {});

/// Checks the CRC-32 of every stored entry of a zip archive (torch.save files, ventral's
/// checkpoints) against its central directory: LibTorch's reader does not, so a flipped bit in
/// a tensor would load as a silently different weight. Stored and deflated entries are checked,
/// and every entry's name against its copy in the directory (no checksum covers names).
/// InputError naming the file and the entry on a mismatch, a truncated entry or an unreadable
/// directory. Zip64 archives (over 4 GiB) pass unchecked. Returns every entry's name and
/// unpacked size in bytes, from the directory (empty for a zip64 archive).
std::map<std::string, uint64_t> verify_zip_checksums(const std::string& path);

}  // namespace ventral
