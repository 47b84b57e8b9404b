// package.json from a store or a mirror (unsigned until the generation's hash is checked,
// and read by `wharf publish` from any publisher): parse, validate, and what a valid index
// allows must serialise and parse again to the same bytes.
#include "archive/package_index.h"
#include "archive/reader.h"
#include "fuzz.h"

using namespace wharf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto index = ParsePackageIndex(fuzz::Input(data, size));
  if (!index) return 0;
  std::string json = PackageIndexToJson(*index);
  auto again = ParsePackageIndex(json);
  WHARF_FUZZ_CHECK(again);
  WHARF_FUZZ_CHECK(PackageIndexToJson(*again) == json);
  // What a reader plans from a valid index: bounded whatever the numbers.
  UnpackPlan plan = PlanUnpack(*index, 4);
  WHARF_FUZZ_CHECK(plan.decoders >= 1 && plan.decoders <= 4);
  (void)StoreFolder(*index);
  return 0;
}
