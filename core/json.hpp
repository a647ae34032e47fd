#pragma once
/// Reading a JSON file a run or an export wrote (nlohmann-json).
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/io.hpp"
#include "core/text.hpp"

namespace ventral {

/// The file's JSON; InputError naming the file when it is missing, unreadable or not valid JSON.
inline nlohmann::json read_json_file(const std::string& path) {
  const std::vector<unsigned char> bytes = read_file(path);
  try {
    return nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& e) {
    throw InputError(printable(path) + ": not valid JSON (" + std::string(e.what()) + ")");
  }
}

/// Whether the file holds JSON for which `looks_right` is true: how ventral tells a file it wrote
/// (and may replace) from someone else's. A missing, unreadable or invalid file is false.
inline bool json_file_matches(const std::string& path, const std::function<bool(const nlohmann::json&)>& looks_right) {
  try {
    return looks_right(read_json_file(path));
  } catch (const std::exception&) {  // nlohmann's type errors too: a field of another type is another file
    return false;
  }
}

}  // namespace ventral
