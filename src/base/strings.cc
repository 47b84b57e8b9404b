#include "base/strings.h"

#include "base/file.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace wharf {

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

static constexpr char kBase64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kBase64[(v >> shift) & 63];
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    if (rest == 2) v |= uint8_t(bytes[i + 1]) << 8;
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += rest == 2 ? kBase64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      char c = text[i + j];
      int d;
      if (c == '=' && i + 4 == text.size() && j >= 2) {
        d = 0;
        ++pad;
      } else if (pad > 0) {
        return std::nullopt;
      } else {
        const char* p = std::char_traits<char>::find(kBase64, 64, c);
        if (p == nullptr) return std::nullopt;
        d = int(p - kBase64);
      }
      v = (v << 6) | d;
    }
    out += char(v >> 16);
    if (pad < 2) out += char((v >> 8) & 255);
    if (pad < 1) out += char(v & 255);
  }
  return out;
}

std::vector<std::string> Split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t end = text.find(separator, start);
    parts.emplace_back(text.substr(start, end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts;
}

bool IsSha256Hex(std::string_view text) {
  if (text.size() != 64) return false;
  for (char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = text[i];
    int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : -1;
    if (extra < 0 || i + extra >= text.size()) return false;
    uint32_t cp = extra == 0 ? c : c & (0x3f >> extra);
    for (int k = 1; k <= extra; ++k) {
      unsigned char cc = text[i + k];
      if ((cc >> 6) != 0x2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += extra + 1;
  }
  return true;
}

std::string HumanBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB"};
  double value = double(bytes);
  int unit = 0;
  while (value >= 1000 && unit < 4) {
    value /= 1000;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, unit == 0 ? "%.0f %s" : "%.1f %s", value, kUnits[unit]);
  return buffer;
}

std::string FormatTime(int64_t epoch_seconds) {
  std::time_t t = epoch_seconds;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

std::optional<int64_t> ParseTime(std::string_view text) {
  if (text.size() != 20) return std::nullopt;
  std::tm tm{};
  std::string s(text);
  char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  int64_t t = timegm(&tm);
  if (FormatTime(t) != s) return std::nullopt;
  return t;
}

namespace {

// The length of the well-formed UTF-8 sequence at the start of `text`, or 0.
size_t Utf8Length(std::string_view text) {
  unsigned char c = text[0];
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || n > text.size() || !IsValidUtf8(text.substr(0, n))) return 0;
  return n;
}

uint32_t CodePoint(std::string_view seq) {
  if (seq.size() == 1) return static_cast<unsigned char>(seq[0]);
  uint32_t cp = static_cast<unsigned char>(seq[0]) & (0x7f >> seq.size());
  for (size_t i = 1; i < seq.size(); ++i) cp = (cp << 6) | (static_cast<unsigned char>(seq[i]) & 0x3f);
  return cp;
}

bool Unprintable(uint32_t cp) {
  return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
         (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029 || cp == 0x200e || cp == 0x200f ||
         cp == 0x061c;
}

}  // namespace

std::string EscapeForTerminal(std::string_view text, bool keep_newlines) {
  std::string out;
  out.reserve(text.size());
  char buffer[16];
  for (size_t i = 0; i < text.size();) {
    size_t n = Utf8Length(text.substr(i));
    if (n == 0) {  // not UTF-8: a lone 0x9b is CSI to some terminals
      std::snprintf(buffer, sizeof buffer, "\\x%02x", static_cast<unsigned char>(text[i]));
      out += buffer;
      ++i;
      continue;
    }
    uint32_t cp = CodePoint(text.substr(i, n));
    if (cp == '\\') {  // doubled, so that a literal "\x1b" is never taken for an escaped ESC
      out += "\\\\";
    } else if (Unprintable(cp) && !(keep_newlines && cp == '\n')) {
      std::snprintf(buffer, sizeof buffer, cp < 0x80 ? "\\x%02x" : "\\u%04x", static_cast<unsigned>(cp));
      out += buffer;
    } else {
      out.append(text.substr(i, n));
    }
    i += n;
  }
  return out;
}

bool JsonShapeWithin(std::string_view text, int max_depth, size_t max_values) {
  int depth = 0;
  size_t values = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[': case '{':
        if (++depth > max_depth || ++values > max_values) return false;
        break;
      case ']': case '}': --depth; break;
      case ',':
        if (++values > max_values) return false;
        break;
      default: break;
    }
  }
  return true;
}

std::optional<size_t> FirstNonAscii(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i)
    if (static_cast<unsigned char>(text[i]) >= 0x80) return i;
  return std::nullopt;
}

Result<std::string> ReadTomlText(const std::string& path) {
  auto text = ReadFile(path, 1 << 20);
  if (!text) return std::unexpected(text.error());
  if (auto at = FirstNonAscii(*text))
    return Fail(ErrorCode::kInvalidArgument,
                path + ":" + std::to_string(1 + std::count(text->begin(), text->begin() + *at, '\n')) +
                    ": a character beyond ASCII; wharf's TOML files are ASCII, comments and strings too "
                    "(Debian 12's TOML library mis-reads some others); write it another way");
  return text;
}

}  // namespace wharf
