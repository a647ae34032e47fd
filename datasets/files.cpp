// Image folders and file lists: indexed (paths, labels, class names; no pixels), the index
// cached, and the images then streamed (decoded when fetched, in the loader's threads) or
// decoded into memory.
#include <opencv2/imgproc.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "core/error.hpp"
#include "core/io.hpp"
#include "core/text.hpp"
#include "datasets/dataset.hpp"
#include "datasets/decode.hpp"
#include "datasets/image.hpp"

namespace ventral {

namespace fs = std::filesystem;

void ImageFiles::add(const std::string& path) {
  text_.insert(text_.end(), path.begin(), path.end());
  offsets_.push_back(text_.size());
}

std::string ImageFiles::name(size_t k) const {
  return std::string(text_.data() + offsets_[k], text_.data() + offsets_[k + 1]);
}

std::string ImageFiles::path(size_t k) const {
  std::string n = name(k);
  return n.empty() || n[0] == '/' || root.empty() ? n : (fs::path(root) / n).string();
}

size_t ImageFiles::skipped() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return skipped_.size();
}

bool ImageFiles::mark_skipped(int64_t k) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return skipped_.insert(k).second;
}

namespace {

bool hidden(const fs::path& p) { return p.filename().string().rfind('.', 0) == 0; }

// A decoded image (gray or RGB) with `channels` channels.
cv::Mat to_channels(const cv::Mat& img, int channels) {
  if (img.channels() == channels) return img;
  cv::Mat out;
  cv::cvtColor(img, out, channels == 1 ? cv::COLOR_RGB2GRAY : cv::COLOR_GRAY2RGB);
  return out;
}

// File k of `files`, decoded and brought to channels × height × width, into `out`. False (and
// `why`) when it does not decode; `resized` is set when its size differed, `recoloured` when
// its channels did (colour in a gray dataset, or gray in a colour one).
bool decode_fitted(const ImageFiles& files, size_t k, int64_t channels, int64_t height, int64_t width, uint8_t* out,
                   std::string* why, bool* resized = nullptr, bool* recoloured = nullptr) {
  cv::Mat img;
  try {
    img = decode_image_file(files.path(k));
  } catch (const InputError& e) {
    if (why) *why = e.what();
    return false;
  }
  if (resized) *resized = img.rows != height || img.cols != width;
  if (recoloured) *recoloured = img.channels() != channels;
  cv::Mat fitted = fit_image(to_channels(img, static_cast<int>(channels)), files.options, height, width);
  cv::Mat dst(static_cast<int>(height), static_cast<int>(width), CV_8UC(static_cast<int>(channels)), out);
  fitted.copyTo(dst);
  return true;
}

// ---- the index cache -------------------------------------------------------------------

constexpr const char* kCacheMagic = "ventral-index 3";

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Modification time in nanoseconds, or -1.
int64_t mtime_ns(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// Device and inode of a folder ("" when it cannot be read): two class folders that swap names
// keep their mtimes (a rename changes neither folder's), but not their inodes.
std::string identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_dev) + ':' + std::to_string(st.st_ino);
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Where an index of `source` (a folder or a list file) is cached: beside it, or in the user's
// cache folder when that is read-only.
std::vector<std::string> cache_paths(const std::string& source, bool is_folder) {
  std::vector<std::string> out;
  const fs::path src(source);
  out.push_back(is_folder ? (src / ".ventral-index").string()
                          : (src.parent_path() / ("." + src.filename().string() + ".ventral-index")).string());
  std::string base;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) base = x;
  else if (const char* h = std::getenv("HOME"); h && *h) base = std::string(h) + "/.cache";
  if (!base.empty()) {
    std::error_code ec;
    out.push_back((fs::path(base) / "ventral" / ("index-" + hex64(fnv1a(fs::absolute(src, ec).string())))).string());
  }
  return out;
}

// A cached index whose key matches, or nothing: a cache that is stale, from another version or
// damaged is rebuilt, never an error.
std::optional<ImageIndex> read_cache(const std::vector<std::string>& paths, const std::string& key,
                                     const std::string& root) {
  for (const auto& path : paths) {
    // The last line checks the lines above it: an index edited or damaged by hand is rebuilt,
    // not trusted (its names are the files the loader opens).
    std::string text;
    {
      std::ifstream file(path, std::ios::binary);
      if (!file) continue;
      text.assign(std::istreambuf_iterator<char>(file), {});
    }
    const size_t last = text.size() > 1 ? text.rfind('\n', text.size() - 2) : std::string::npos;
    if (last == std::string::npos || text.back() != '\n') continue;
    const std::string body = text.substr(0, last + 1), check = text.substr(last + 1, text.size() - last - 2);
    if (check.size() < 17 || check.compare(check.size() - 17, 17, "\t" + hex64(fnv1a(body))) != 0) continue;
    std::istringstream in(body + check.substr(0, check.size() - 17) + "\n");
    std::string line;
    if (!std::getline(in, line) || line != kCacheMagic) continue;
    if (!std::getline(in, line) || line != "key\t" + key) continue;
    size_t n_classes = 0, n_files = 0;
    ImageIndex index;
    if (!std::getline(in, line) ||
        std::sscanf(line.c_str(), "classes\t%zu\tfiles\t%zu\tskipped\t%zu\t%zu", &n_classes, &n_files,
                    &index.nested_folders, &index.not_files) != 4)
      continue;
    index.files = std::make_shared<ImageFiles>();
    index.files->root = root;
    bool ok = true;
    for (size_t c = 0; c < n_classes && ok; ++c) ok = static_cast<bool>(std::getline(in, line)), index.classes.push_back(line);
    for (size_t k = 0; k < n_files && ok; ++k) {
      ok = static_cast<bool>(std::getline(in, line));
      const size_t tab = line.find('\t');
      if (!ok || tab == std::string::npos || tab == 0) {
        ok = false;
        break;
      }
      char* end = nullptr;
      const long long label = std::strtoll(line.c_str(), &end, 10);
      ok = end == line.c_str() + tab && label >= 0 && static_cast<size_t>(label) < n_classes;
      const std::string name = line.substr(tab + 1);
      ok = ok && name[0] != '/' && ("/" + name + "/").find("/../") == std::string::npos;  // inside the root
      index.labels.push_back(label);
      index.files->add(name);
    }
    // The last line says how many entries came before it: a cache cut short is not used.
    if (ok && std::getline(in, line) && line == "end\t" + std::to_string(n_files) && !std::getline(in, line) &&
        index.labels.size() == n_files && n_files > 0)
      return index;
  }
  return std::nullopt;
}

// Writes the index where it can (quietly nowhere when neither place is writable, or when a
// name holds a line break the format cannot carry). Returns the path written, or "".
std::string write_cache(const std::vector<std::string>& paths, const std::string& key, const ImageIndex& index) {
  std::string out = std::string(kCacheMagic) + "\nkey\t" + key + "\nclasses\t" + std::to_string(index.classes.size()) +
                    "\tfiles\t" + std::to_string(index.labels.size()) + "\tskipped\t" +
                    std::to_string(index.nested_folders) + "\t" + std::to_string(index.not_files) + "\n";
  for (const auto& c : index.classes) {
    if (c.find('\n') != std::string::npos) return "";
    out += c + "\n";
  }
  for (size_t k = 0; k < index.labels.size(); ++k) {
    std::string name = index.files->name(k);
    if (name.find('\n') != std::string::npos) return "";
    out += std::to_string(index.labels[k]) + "\t" + name + "\n";
  }
  out += "end\t" + std::to_string(index.labels.size()) + "\t" + hex64(fnv1a(out)) + "\n";
  for (const auto& path : paths) {
    try {
      make_directories(fs::path(path).parent_path().string());
      write_file_atomic(path, out);
      return path;
    } catch (const std::exception&) {
    }
  }
  return "";
}

// Cached: the key of the source as it is now. `stamps` are modification times the key holds;
// one within the last two seconds could still change without changing (a file added in the
// same clock tick), so such an index is not cached ("racily clean", as git calls it).
template <class Build>
ImageIndex cached(const std::string& source, bool is_folder, const std::string& key, const std::vector<int64_t>& stamps,
                  const std::string& root, Build build) {
  const auto paths = cache_paths(source, is_folder);
  if (auto hit = read_cache(paths, key, root)) return *hit;
  const auto t0 = std::chrono::steady_clock::now();
  ImageIndex index = build();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t now = now_ns();
  const bool racy = std::any_of(stamps.begin(), stamps.end(), [&](int64_t t) { return t < 0 || t > now - 2000000000; });
  const std::string written = racy ? "" : write_cache(paths, key, index);
  if (index.labels.size() >= 10000)
    std::fprintf(stderr, "note: indexed %s: %zu images in %zu classes in %.1f s%s\n", source.c_str(),
                 index.labels.size(), index.classes.size(), seconds,
                 written.empty() ? " (not cached)" : ("; cached in " + written).c_str());
  return index;
}

// ---- list files ------------------------------------------------------------------------

struct ListEntry {
  std::string path, label;
  size_t line;
};

std::string trimmed(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::vector<ListEntry> read_list(const std::string& list) {
  std::error_code ec;
  if (!fs::exists(list, ec)) throw InputError(printable(list) + ": no such file");
  if (fs::is_directory(list, ec)) throw InputError(printable(list) + ": is a folder, not a list file (path,label lines)");
  std::string text;
  {
    const auto bytes = read_file(list);
    text.assign(bytes.begin(), bytes.end());
  }
  if (text.find('\0') != std::string::npos) throw InputError(printable(list) + ": not a text file (holds NUL bytes)");
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);  // a UTF-8 byte-order mark
  std::vector<ListEntry> entries;
  std::istringstream in(text);
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::vector<std::string> fields = split_csv_row(line);
    if (fields.size() == 2) fields[1] = trimmed(fields[1]);  // "cat " is the class "cat"
    if (fields.size() == 2 && fields[1].size() > 1000)
      throw InputError(printable(list) + ":" + std::to_string(n) + ": a label of " + std::to_string(fields[1].size()) +
                       " characters (class names are at most 1000)");
    if (fields.size() != 2 || fields[0].empty() || fields[1].empty())
      throw InputError(printable(list) + ":" + std::to_string(n) + ": expected path,label (a CSV line of two fields), got '" +
                       printable(line.substr(0, 200)) + "'");
    if (entries.empty() && fields[0] == "path" && (fields[1] == "label" || fields[1] == "class")) continue;  // header
    entries.push_back({fields[0], fields[1], n});
  }
  if (entries.empty()) throw InputError(printable(list) + ": holds no images (expected path,label lines)");
  return entries;
}


// Label numbers run to kMaxLabel: more classes than any dataset of the field has (ImageNet-21k
// has 21,841), and a typo in one number would otherwise make a billion classes.
constexpr int64_t kMaxLabel = 99999;

bool is_label_number(const std::string& s) { return parse_count(s).has_value(); }

// The class names and their order: classes.txt beside the list, or else the names (or label
// numbers) of the list that fixes them.
std::vector<std::string> list_classes(const std::string& list, const std::string& classes_from, bool* numbered) {
  const fs::path txt = fs::path(list).parent_path() / "classes.txt";
  std::error_code ec;
  std::vector<ListEntry> source = read_list(classes_from.empty() ? list : classes_from);
  *numbered = std::all_of(source.begin(), source.end(), [](const ListEntry& e) { return is_label_number(e.label); });
  if (fs::exists(txt, ec)) {  // a folder or pipe of that name is refused by read_file, not ignored
    std::vector<std::string> names;
    const auto bytes = read_file(txt.string());
    std::string text(bytes.begin(), bytes.end());
    if (text.find('\0') != std::string::npos) throw InputError(printable(txt.string()) + ": not a text file (holds NUL bytes)");
    if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
    std::istringstream in(text);
    std::unordered_map<std::string, size_t> seen;
    size_t n = 0;
    for (std::string line; std::getline(in, line);) {
      ++n;
      line = trimmed(line.size() && line.back() == '\r' ? line.substr(0, line.size() - 1) : line);
      if (line.empty()) continue;
      if (auto [it, fresh] = seen.emplace(line, n); !fresh)
        throw InputError(printable(txt.string()) + ":" + std::to_string(n) + ": class '" + printable(line) +
                         "' again (also on line " + std::to_string(it->second) + ")");
      names.push_back(line);
    }
    if (names.empty()) throw InputError(printable(txt.string()) + ": names no classes");
    return names;
  }
  std::vector<std::string> names;
  if (*numbered) {
    int64_t top = 0;
    std::unordered_map<int64_t, const ListEntry*> written;  // "01" and "1" would merge two classes silently
    for (const auto& e : source) {
      const int64_t label = std::stoll(e.label);
      if (auto [it, fresh] = written.emplace(label, &e); !fresh && it->second->label != e.label)
        throw InputError(printable(classes_from.empty() ? list : classes_from) + ":" + std::to_string(e.line) +
                         ": label '" + e.label + "' is class number " + std::to_string(label) + ", written '" +
                         it->second->label + "' on line " + std::to_string(it->second->line) +
                         "; write each class number one way (or name the classes in classes.txt beside the list)");
      if (label > kMaxLabel)
        throw InputError(printable(classes_from.empty() ? list : classes_from) + ":" + std::to_string(e.line) +
                         ": label number " + e.label + " is above " + std::to_string(kMaxLabel) +
                         " (labels are class numbers from 0; name the classes in classes.txt beside the list)");
      top = std::max(top, label);
    }
    for (int64_t c = 0; c <= top; ++c) names.push_back(std::to_string(c));
  } else {
    for (const auto& e : source) names.push_back(e.label);
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
  }
  return names;
}

}  // namespace

namespace {
// The class folders of ROOT (sub-folders not starting with '.'), sorted; `loose` counts the
// other entries (files at the top, which belong to no class), `hidden_dirs` the hidden folders.
std::vector<fs::path> class_folders(const std::string& root, size_t* loose = nullptr, size_t* hidden_dirs = nullptr) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw InputError(printable(root) + ": no such folder");
  std::vector<fs::path> class_dirs;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (hidden(it->path())) {
      if (std::error_code dir_ec; hidden_dirs && it->is_directory(dir_ec)) ++*hidden_dirs;
      continue;
    }
    if (std::error_code dir_ec; it->is_directory(dir_ec)) class_dirs.push_back(it->path());
    else if (loose) ++*loose;
  }
  if (ec) throw InputError(printable(root) + ": cannot list the folder (" + ec.message() + ")");
  std::sort(class_dirs.begin(), class_dirs.end());
  if (class_dirs.empty())
    throw InputError(printable(root) + ": empty image folder (expected ROOT/<class>/<image> sub-folders)");
  return class_dirs;
}
}  // namespace

void use_training_classes(ImageIndex& index, const std::string& root, const std::string& training_root) {
  std::vector<std::string> names;
  for (const auto& dir : class_folders(training_root)) names.push_back(dir.filename().string());
  std::vector<int64_t> to(index.classes.size());
  for (size_t c = 0; c < index.classes.size(); ++c) {
    const auto it = std::find(names.begin(), names.end(), index.classes[c]);
    if (it == names.end())
      throw InputError(printable((fs::path(root) / index.classes[c]).string()) + ": class folder not in " +
                       printable(training_root) + " (the test split's classes must be the training split's)");
    to[c] = it - names.begin();
  }
  for (int64_t& label : index.labels) label = to[static_cast<size_t>(label)];
  index.classes = std::move(names);
}

ImageIndex index_folder(const std::string& root) {
  size_t loose = 0, hidden_dirs = 0;
  const std::vector<fs::path> class_dirs = class_folders(root, &loose, &hidden_dirs);
  std::string key;
  std::vector<int64_t> stamps;
  for (const auto& dir : class_dirs) {
    stamps.push_back(mtime_ns(dir.string()));
    key += dir.filename().string() + '\x1f' + std::to_string(stamps.back()) + '\x1f' + identity(dir.string()) + '\x1e';
  }
  ImageIndex found = cached(root, true, hex64(fnv1a(key)), stamps, root, [&] {
    ImageIndex index;
    index.files = std::make_shared<ImageFiles>();
    index.files->root = root;
    for (size_t c = 0; c < class_dirs.size(); ++c) {
      index.classes.push_back(class_dirs[c].filename().string());
      std::vector<std::string> names;
      std::error_code list_ec;
      for (fs::directory_iterator it(class_dirs[c], list_ec), end; !list_ec && it != end; it.increment(list_ec)) {
        if (hidden(it->path())) continue;
        std::error_code entry_ec;
        if (it->is_regular_file(entry_ec)) names.push_back(it->path().filename().string());
        else if (it->is_directory(entry_ec)) ++index.nested_folders;
        else ++index.not_files;  // a dangling link, a link loop, a pipe, a device
      }
      if (list_ec)
        throw InputError(printable(class_dirs[c].string()) + ": cannot list the folder (" + list_ec.message() + ")");
      std::sort(names.begin(), names.end());
      for (const auto& name : names) {
        index.files->add(index.classes.back() + "/" + name);
        index.labels.push_back(static_cast<int64_t>(c));
      }
    }
    if (index.labels.empty())
      throw InputError(printable(root) + ": empty image folder (the class sub-folders hold no files)");
    return index;
  });
  // Said every time, cached or not: a count that differs from what the user expects starts here.
  std::vector<std::string> parts;
  auto count = [](size_t n, const char* one, const char* many) { return std::to_string(n) + " " + (n == 1 ? one : many); };
  if (found.nested_folders)
    parts.push_back(count(found.nested_folders, "sub-folder inside a class folder", "sub-folders inside class folders") +
                    " (not read: a class's images are the files directly in its folder)");
  if (found.not_files)
    parts.push_back(count(found.not_files, "entry that is not a file", "entries that are not files") +
                    " (dangling links, pipes or devices)");
  if (loose) parts.push_back(count(loose, "file", "files") + " beside the class folders (in no class)");
  if (hidden_dirs)
    parts.push_back(count(hidden_dirs, "hidden folder", "hidden folders") + " (names starting with '.': no class)");
  if (!parts.empty()) {
    std::string text;
    for (size_t k = 0; k < parts.size(); ++k) text += (k ? (k + 1 == parts.size() ? " and " : ", ") : "") + parts[k];
    std::fprintf(stderr, "note: %s: skipped %s\n", printable(root).c_str(), text.c_str());
  }
  return found;
}

ImageIndex index_list(const std::string& list, const std::string& classes_from) {
  const fs::path txt = fs::path(list).parent_path() / "classes.txt";
  std::error_code ec;
  if (!fs::exists(list, ec)) throw InputError(printable(list) + ": no such file");
  std::vector<int64_t> stamps = {mtime_ns(list)};
  std::string key = list + '\x1e' + std::to_string(fs::file_size(list, ec)) + '\x1e' + std::to_string(stamps[0]);
  for (const std::string& other : {classes_from, txt.string()})
    if (!other.empty() && fs::exists(other, ec)) {
      stamps.push_back(mtime_ns(other));
      key += '\x1e' + other + '\x1e' + std::to_string(stamps.back());
    }
  const std::string root = fs::path(list).parent_path().string();
  return cached(list, false, hex64(fnv1a(key)), stamps, root, [&] {
    bool numbered = false;
    ImageIndex index;
    index.classes = list_classes(list, classes_from, &numbered);
    index.files = std::make_shared<ImageFiles>();
    index.files->root = root;
    std::unordered_map<std::string, int64_t> class_of;
    for (size_t c = 0; c < index.classes.size(); ++c) class_of.emplace(index.classes[c], static_cast<int64_t>(c));
    std::unordered_map<std::string, size_t> seen;
    const std::string named_by = fs::exists(txt, ec) ? txt.string() : classes_from.empty() ? list : classes_from;
    for (const ListEntry& e : read_list(list)) {
      const std::string where = printable(list) + ":" + std::to_string(e.line) + ": ";
      int64_t label = -1;
      if (auto it = class_of.find(e.label); it != class_of.end()) label = it->second;
      else if (is_label_number(e.label) && (numbered || named_by == txt.string())) label = std::stoll(e.label);
      if (label < 0 || label >= static_cast<int64_t>(index.classes.size()))
        throw InputError(where + "unknown class '" + printable(e.label) + "' (not among the " +
                         std::to_string(index.classes.size()) + " classes of " + printable(named_by) + ")");
      index.files->add(e.path);
      const std::string path = index.files->path(index.files->size() - 1);
      // The same file twice, however it is written (relative, absolute, with ./ or ..).
      const std::string normal = fs::absolute(fs::path(path), ec).lexically_normal().string();
      if (auto [it, fresh] = seen.emplace(normal, e.line); !fresh)
        throw InputError(where + "duplicate path '" + printable(e.path) + "' (also on line " +
                         std::to_string(it->second) + ")");
      if (!fs::is_regular_file(path, ec))
        throw InputError(where + printable(path) +
                         (fs::is_directory(path, ec)  ? ": is a folder, not an image file"
                          : fs::exists(path, ec)      ? ": is not a regular file (a device or pipe?), so no image"
                          : e.path[0] == '/'          ? ": no such file"
                                                      : ": no such file (paths are relative to the list's folder)"));
      if (normal.rfind("/proc/", 0) == 0 || normal.rfind("/sys/", 0) == 0)  // regular files that are no images on disk
        throw InputError(where + printable(path) + ": is a kernel interface file, not an image");
      index.labels.push_back(label);
    }
    return index;
  });
}

namespace {

// What an error for a file that does not decode says to do, streamed or read into memory.
constexpr const char* kBadImageFix = "; remove or replace the file, or set data.skip_bad_images=true to leave such files out";

// Image i of a streamed dataset through `decode(file, why)`, which returns false (and why) when
// the file does not decode: an InputError; with data.skip_bad_images an UndecodableImage, after
// one warning per file, which the loader answers with a stand-in from its own images.
template <class Decode>
void decode_or_skip(const Dataset& d, size_t i, Decode decode) {
  std::string why;
  if (decode(static_cast<size_t>(d.ids[i]), &why)) return;
  if (!d.files->options.skip_bad_images)
    throw InputError(why + kBadImageFix);
  if (d.files->mark_skipped(d.ids[i])) std::fprintf(stderr, "warning: %s; skipped (data.skip_bad_images)\n", why.c_str());
  throw UndecodableImage(why);
}

}  // namespace

const uint8_t* Dataset::fetch(size_t i, std::vector<uint8_t>& scratch) const {
  if (!files) return image(i);
  scratch.resize(image_bytes());
  decode_or_skip(*this, i, [&](size_t k, std::string* why) {
    bool differs = false, recoloured = false;
    const bool ok = decode_fitted(*files, k, channels, height, width, scratch.data(), why, &differs, &recoloured);
    if (ok && recoloured && files->first_recolour())
      std::fprintf(stderr, "note: %s: %s is stored %s and was converted to %s like the first image (streamed images are "
                   "converted one by one; others may be too); set data.channels to say which is meant\n",
                   printable(files->root).c_str(), printable(files->name(k)).c_str(),
                   channels == 1 ? "in colour" : "in gray", channels == 1 ? "gray" : "RGB");
    // As the in-memory load says it once for all: a size the options did not ask for is said.
    if (ok && differs && files->options.center_crop == 0 && files->first_resize()) {
      if (files->options.image_size == 0)
        std::fprintf(stderr, "note: %s: %s is not %lldx%lld like the first image and was resized to it (streamed "
                     "images are fitted one by one; others may differ too); set data.image_size, or data.resize and "
                     "data.center_crop\n", printable(files->root).c_str(), printable(files->name(k)).c_str(),
                     (long long)width, (long long)height);
      else if (!files->options.size_from.empty())
        std::fprintf(stderr, "note: %s: %s is not %lldx%lld (%s) and was resized to it (streamed images are fitted one "
                     "by one; others may differ too)\n", printable(files->root).c_str(), printable(files->name(k)).c_str(),
                     (long long)width, (long long)height, files->options.size_from.c_str());
    }
    return ok;
  });
  return scratch.data();
}

cv::Mat source_image(const Dataset& data, size_t i) {
  if (!data.streamed())
    return cv::Mat(static_cast<int>(data.height), static_cast<int>(data.width), CV_8UC(static_cast<int>(data.channels)),
                   const_cast<uint8_t*>(data.image(i)));
  cv::Mat img;
  decode_or_skip(data, i, [&](size_t k, std::string* why) {
    try {
      img = to_channels(decode_image_file(data.files->path(k)), static_cast<int>(data.channels));
      return true;
    } catch (const InputError& e) {
      *why = e.what();
      return false;
    }
  });
  return img;
}

Dataset open_images(ImageIndex index, const LoadOptions& options, const std::string& what) {
  ImageFiles& files = *index.files;
  files.options = options;
  const size_t n = index.labels.size();
  // The geometry: asked for, or the first image's (that decodes; the others' errors come when
  // they are decoded).
  cv::Mat first;
  std::string first_error;
  size_t tried = 0;
  for (size_t k = 0; k < n && first.empty() && tried < 100; ++k, ++tried) {
    try {
      first = decode_image_file(files.path(k));
    } catch (const InputError& e) {
      if (first_error.empty()) first_error = e.what();
    }
  }
  if (first.empty())
    throw InputError(n == 1 ? first_error
                            : printable(what) + ": none of the first " + std::to_string(tried) + " images decodes (" +
                                  first_error + ")");
  Dataset d;
  d.classes = std::move(index.classes);
  d.labels = std::move(index.labels);
  d.channels = options.channels ? options.channels : (first.channels() == 1 ? 1 : 3);
  files.options.channels = d.channels;
  if (options.channels != 0) files.first_recolour();  // channels asked for: converting is no news
  const int64_t side = options.center_crop ? options.center_crop : options.image_size;
  d.height = side ? side : first.rows;
  d.width = side ? side : first.cols;
  const double bytes = static_cast<double>(n) * static_cast<double>(d.image_bytes());
  const bool stream = options.stream == "on" || (options.stream == "auto" && bytes > static_cast<double>(kInMemoryBytes));
  d.files = index.files;
  d.ids.resize(n);
  for (size_t k = 0; k < n; ++k) d.ids[k] = static_cast<int64_t>(k);
  if (stream) {
    char gb[64];
    std::snprintf(gb, sizeof gb, "%.1f GB", bytes / 1e9);
    d.storage = "streamed from " + std::to_string(n) + " files, decoded in the loader (" +
                (options.stream == "on" ? std::string("data.stream on") : std::string(gb) + " decoded would exceed 1 GiB") +
                ")";
    return d;
  }
  // In memory: every image decoded now, through the same code the streamed path runs.
  d.pixels.resize(n * d.image_bytes());
  std::vector<int64_t> keep;
  size_t resized = 0, recoloured = 0;
  for (size_t k = 0; k < n; ++k) {
    std::string why;
    bool differs = false, other_channels = false;
    if (decode_fitted(files, k, d.channels, d.height, d.width, d.pixels.data() + keep.size() * d.image_bytes(), &why,
                      &differs, &other_channels)) {
      keep.push_back(static_cast<int64_t>(k));
      resized += differs;
      recoloured += other_channels;
    } else if (options.skip_bad_images) {
      std::fprintf(stderr, "warning: %s; skipped (data.skip_bad_images)\n", why.c_str());
    } else {
      throw InputError(why + kBadImageFix);
    }
  }
  if (keep.size() < n) {
    std::fprintf(stderr, "note: %s: skipped %zu of %zu images that do not decode (data.skip_bad_images)\n",
                 what.c_str(), n - keep.size(), n);
    std::vector<int64_t> labels;
    for (int64_t k : keep) labels.push_back(d.labels[static_cast<size_t>(k)]);
    d.labels = std::move(labels);
    d.pixels.resize(keep.size() * d.image_bytes());
  }
  if (recoloured > 0 && options.channels == 0)
    std::fprintf(stderr, "note: %s: %zu of %zu images are stored %s and were converted to %s like the first image; set "
                 "data.channels to say which is meant (1 = gray, 3 = RGB)\n", what.c_str(), recoloured, d.labels.size(),
                 d.channels == 1 ? "in colour" : "in gray", d.channels == 1 ? "gray" : "RGB");
  if (resized > 0 && options.image_size == 0 && options.center_crop == 0)
    std::fprintf(stderr, "note: %s: %zu of %zu images differ in size from the first (%lldx%lld) and were resized to it; "
                 "set data.image_size, or data.resize and data.center_crop\n",
                 what.c_str(), resized, d.labels.size(), (long long)d.width, (long long)d.height);
  else if (resized > 0 && options.center_crop == 0 && !options.size_from.empty())  // `eval --data`: said, not silent
    std::fprintf(stderr, "note: %s: %zu of %zu images are not %lldx%lld (%s) and were resized to it\n", what.c_str(),
                 resized, d.labels.size(), (long long)d.width, (long long)d.height, options.size_from.c_str());
  d.files.reset();
  d.ids.clear();
  return d;
}

}  // namespace ventral
