// deltas.json from a store or a mirror (not signed: what a patch makes is checked against
// the signed index): parse and check; what it accepts serialises and parses the same.
#include "archive/delta.h"
#include "fuzz.h"

using namespace wharf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto deltas = ParseDeltaIndex(fuzz::Input(data, size));
  if (!deltas) return 0;
  std::string json = DeltaIndexToJson(*deltas);
  auto again = ParseDeltaIndex(json);
  WHARF_FUZZ_CHECK(again);
  WHARF_FUZZ_CHECK(DeltaIndexToJson(*again) == json);
  for (const auto& d : *deltas) WHARF_FUZZ_CHECK(d.file.empty() ? d.data.size() == d.size : d.data.empty());
  return 0;
}
