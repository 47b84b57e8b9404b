// package.json.zst from a store or a mirror: one zstd frame that must decode to exactly the
// size the signed generation pins (here: the frame's own content size when it declares a
// small one, else a size from the input's first bytes), then parse as package.json.
#include <zstd.h>

#include "archive/package_index.h"
#include "fuzz.h"

using namespace wharf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = fuzz::Input(data, size);
  uint64_t pinned = ZSTD_getFrameContentSize(input.data(), input.size());
  if (pinned > (1u << 20)) {  // unknown, an error, or large: a size of the input's choosing
    if (input.size() < 2) return 0;
    pinned = static_cast<unsigned char>(input[0]) | static_cast<unsigned char>(input[1]) << 8;
    input.remove_prefix(2);
  }
  auto json = DecompressIndex(input, pinned);
  if (!json) return 0;
  WHARF_FUZZ_CHECK(json->size() == pinned);
  (void)ParsePackageIndex(*json);
  // What publish writes, the agent reads.
  auto back = DecompressIndex(CompressIndex(*json), json->size());
  WHARF_FUZZ_CHECK(back && *back == *json);
  return 0;
}
