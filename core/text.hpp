#pragma once
/// Small string helpers shared by the writers of logs, tables and folders.
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace ventral {

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

/// An integer written in decimal: an optional '-', then digits without a leading zero ("0" itself
/// is one). C's and YAML's readers take 010 as octal 8 and 0x10 as 16, which nobody means.
inline bool is_decimal_integer(const std::string& text) {
  const size_t first = text.rfind('-', 0) == 0 ? 1 : 0;
  return text.size() > first && text.find_first_not_of("0123456789", first) == std::string::npos &&
         (text[first] != '0' || text.size() == first + 1);
}

/// One number through a printf format, e.g. format_number("%.4f", loss).
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

/// Whether `text` is valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF):
/// what JSON files, CSV files read by pandas and plots need of a name.
inline bool valid_utf8(const std::string& text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const unsigned char c = *p;
    size_t n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : 4;
    if (n == 4 || static_cast<size_t>(end - p) <= n) return n == 0;
    uint32_t cp = n == 0 ? c : c & (0x3F >> n);
    for (size_t k = 1; k <= n; ++k) {
      if ((p[k] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (p[k] & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    p += n + 1;
  }
  return true;
}

/// `text` for a one-line message: control characters (line breaks, tabs, NUL), and every byte
/// from 0x80 when the text is not UTF-8, as \xNN; no longer than `limit` characters (the rest
/// elided, its length said).
inline std::string printable(const std::string& text, size_t limit = 1000) {
  std::string out;
  if (text.size() > limit)
    return printable(text.substr(0, limit), limit) + "...(" + std::to_string(text.size()) + " bytes)";
  const bool utf8 = valid_utf8(text);
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
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
