// The small parsers of request lines and bodies: percent-decoded paths, times, HTTP dates,
// durations, base64 (init scripts, inline patches), and the name and path rules every
// other check rests on. Properties: decoding never lets a NUL through, and what is
// accepted formats back to itself.
#include "archive/names.h"
#include "base/strings.h"
#include "fuzz.h"
#include "ops/ops.h"
#include "server/http.h"
#include "server/static_files.h"

using namespace wharf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = fuzz::Input(data, size);
  std::string decoded = http::PercentDecode(input);
  WHARF_FUZZ_CHECK(decoded.find('\0') == std::string::npos || input.find('\0') != std::string_view::npos);
  WHARF_FUZZ_CHECK(decoded.size() <= input.size());
  if (auto t = ParseTime(input)) WHARF_FUZZ_CHECK(FormatTime(*t) == input);
  (void)http::ParseHttpDate(input);
  (void)ops::ParseDuration(std::string(input));
  if (auto bytes = Base64Decode(input)) WHARF_FUZZ_CHECK(Base64Decode(Base64Encode(*bytes)) == bytes);
  (void)IsValidUtf8(input);
  auto parts = fuzz::Parts(input, 3);
  if (parts.size() == 3) {
    bool entry = static_cast<bool>(ValidateEntryPath(parts[0]));
    bool prefix = static_cast<bool>(ValidatePrefix(parts[2]));
    if (entry && prefix && IsUnderPrefix(parts[0], parts[2]))
      WHARF_FUZZ_CHECK(parts[0] == parts[2].substr(1) || parts[0].starts_with(std::string(parts[2].substr(1)) + "/"));
    (void)SymlinkStaysInside(parts[0], parts[1], parts[2]);
    (void)PrefixesOverlap(parts[0], parts[2]);
  }
  return 0;
}
