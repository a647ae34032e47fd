#pragma once
/// Reading a JSON file a run or an export wrote (nlohmann-json).
#include <nlohmann/json.hpp>

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

}  // namespace ventral
