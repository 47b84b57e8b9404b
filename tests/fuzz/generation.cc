// A generation from a store or a mirror, parsed before (and after) its signature is checked:
// parse, validate, round trip, and the agent's acceptance rules over it.
#include "generation/generation.h"
#include "fuzz.h"

using namespace wharf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto generation = ParseGeneration(fuzz::Input(data, size));
  if (!generation) return 0;
  std::string json = GenerationToJson(*generation);
  auto again = ParseGeneration(json);
  WHARF_FUZZ_CHECK(again);
  WHARF_FUZZ_CHECK(GenerationToJson(*again) == json);
  for (int64_t now : {int64_t{0}, generation->created, generation->expires, INT64_MAX, INT64_MIN}) {
    (void)CheckAcceptable(*generation, generation->fec, AcceptedFloor{generation->number, generation->created, ""}, now);
    (void)CheckAcceptable(*generation, "fec01", AcceptedFloor{}, now);
  }
  (void)RollbackTarget({*generation, *again}, std::nullopt);
  (void)RollbackTarget({*generation}, generation->number);
  return 0;
}
