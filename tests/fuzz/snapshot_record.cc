// A snapshot's record (latest.json, <id>.json) from a store or the server, read by a FEC at
// boot and by `wharf data`: parse, validate, round trip.
#include "fuzz.h"
#include "store/data.h"

using namespace wharf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto record = ParseSnapshotRecord(fuzz::Input(data, size));
  if (!record) return 0;
  std::string json = SnapshotRecordToJson(*record);
  auto again = ParseSnapshotRecord(json);
  WHARF_FUZZ_CHECK(again);
  WHARF_FUZZ_CHECK(SnapshotRecordToJson(*again) == json);
  WHARF_FUZZ_CHECK(ValidateSnapshotId(record->id));
  return 0;
}
