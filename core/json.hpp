#pragma once
/// Reading a JSON file a run or an export wrote (nlohmann-json).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/io.hpp"
#include "core/text.hpp"

namespace ventral {

/// The file's JSON; InputError naming the file when it is missing, unreadable or not valid JSON.
/// A key given twice in one object is refused too: the parser would keep the last silently.
inline nlohmann::json read_json_file(const std::string& path) {
  const std::vector<unsigned char> bytes = read_file(path);
  std::vector<std::vector<std::string>> keys;  // the keys of each object being read, innermost last
  auto check = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using e = nlohmann::json::parse_event_t;
    if (event == e::object_start) keys.emplace_back();
    if (event == e::object_end && !keys.empty()) keys.pop_back();
    if (event == e::key && !keys.empty()) {
      const std::string key = parsed.get<std::string>();
      if (std::find(keys.back().begin(), keys.back().end(), key) != keys.back().end())
        throw InputError(printable(path) + ": key \"" + printable(key) + "\" appears twice in one object");
      keys.back().push_back(key);
    }
    return true;
  };
  try {
    return nlohmann::json::parse(bytes.begin(), bytes.end(), check);
  } catch (const nlohmann::json::exception& e) {
    std::string what = e.what();  // "[json.exception.parse_error.101] parse error at ..."
    if (what.rfind("[json.exception.", 0) == 0 && what.find("] ") != std::string::npos) what = what.substr(what.find("] ") + 2);
    throw InputError(printable(path) + ": not valid JSON (" + what + ")");
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
