#pragma once
/// Small string helpers shared by the writers of logs, tables and folders.
#include <cstdio>
#include <string>

namespace ventral {

/// One number through a printf format, e.g. format_number("%.4f", loss).
inline std::string format_number(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

/// A class name usable as a folder name: '/' and '\\' become '-' ("T-shirt/top" →
/// "T-shirt-top"). `ventral perturb --write` names folders this way and eval matches them back.
inline std::string folder_name(std::string name) {
  for (char& c : name)
    if (c == '/' || c == '\\') c = '-';
  return name;
}

}  // namespace ventral
