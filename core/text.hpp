#pragma once
/// Small string helpers shared by the writers of logs, tables and folders.
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace ventral {

/// One number through a printf format, e.g. format_number("%.4f", loss).
/// A whole decimal number written as digits only (no sign, spaces, point or trailing text; at
/// most 9 digits): "12" is 12, "1.9", "2x", " 3", "+4" and "" are nullopt. List parsers use it so
/// that `1:2junk` is an error, not steps 1 to 2.
inline std::optional<int64_t> parse_count(const std::string& text) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

inline std::string format_number(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

/// A number for a CSV cell: format_number, or an empty cell when it is NaN or infinite (a
/// metric with no data; pandas reads the empty cell as NaN). No file ventral writes holds "nan".
inline std::string csv_number(const char* format, double v) {
  return v - v == 0 ? format_number(format, v) : std::string();
}

/// A text cell for a CSV file: as is, or in double quotes (inner quotes doubled) when it holds a
/// comma, a quote or a line break (RFC 4180, as pandas reads it).
inline std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

/// The items with `separator` between them.
/// Numbers as a YAML flow list, exactly (%.17g): what `key=TEXT` needs to set a FloatList.
inline std::string yaml_list(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + format_number("%.17g", v[i]);
  return s + "]";
}

inline std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

/// `word` as one shell word: unchanged when it holds only safe characters, else in single quotes.
inline std::string shell_quote(const std::string& word) {
  const bool safe = !word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                           "0123456789_-+=.,/:@%") == std::string::npos;
  if (safe) return word;
  std::string q = "'";
  for (char c : word) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

/// A class name usable as a folder name: '/' and '\\' become '-' ("T-shirt/top" →
/// "T-shirt-top"). `ventral perturb --write` names folders this way and eval matches them back.
inline std::string folder_name(std::string name) {
  for (char& c : name)
    if (c == '/' || c == '\\') c = '-';
  return name;
}

/// `text` for a one-line message: control characters (line breaks, tabs, NUL) as \xNN, and
/// no longer than `limit` characters (the rest elided, its length said).
inline std::string printable(const std::string& text, size_t limit = 1000) {
  std::string out;
  if (text.size() > limit)
    return printable(text.substr(0, limit), limit) + "...(" + std::to_string(text.size()) + " bytes)";
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

/// One CSV record's fields (RFC 4180: a quoted field may hold commas and doubled quotes).
/// Reads back the results.csv, per_image.csv and metrics.csv that ventral writes.
inline std::vector<std::string> split_csv_row(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') fields.back() += '"', ++i;
    else if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) fields.emplace_back();
    else if (c != '\r' || i + 1 != line.size()) fields.back() += c;
  }
  return fields;
}

}  // namespace ventral
