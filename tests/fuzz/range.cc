// A Range header from anyone (no token needed for the store): "<file size>\n@@@@\n<header>".
// Every range must lie inside the file, and the ranges of one answer together may not ask
// for more than the file (an amplifier otherwise: issue 13, class 8) nor send a byte twice.
#include <algorithm>

#include "fuzz.h"
#include "server/http.h"

using namespace wharf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::Parts(fuzz::Input(data, size), 2);
  if (parts.size() < 2) return 0;
  uint64_t file_size = 0;
  for (char c : parts[0].substr(0, 19)) file_size = file_size * 10 + static_cast<unsigned char>(c) % 10;
  auto ranges = http::ParseRange(parts[1], file_size);
  if (!ranges) return 0;
  WHARF_FUZZ_CHECK(ranges->size() <= 64);
  uint64_t total = 0;
  std::vector<http::ByteRange> sorted = *ranges;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    const auto& r = sorted[i];
    WHARF_FUZZ_CHECK(r.length > 0 && r.first < file_size && r.length <= file_size - r.first);
    WHARF_FUZZ_CHECK(i == 0 || sorted[i - 1].first + sorted[i - 1].length <= r.first);  // no byte twice
    total += r.length;
  }
  WHARF_FUZZ_CHECK(total <= file_size);
  return 0;
}
