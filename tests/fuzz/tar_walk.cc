// The tar headers of one decoded frame, walked against package.json as a sync and publish
// walk them (TarFrameWalk): "<package.json>\n@@@@\n<the frame's tar bytes>[\n@@@@\n<n><k>]",
// frame n of the index (default 0), fed in pieces of 1 + k*7 bytes (default whole).
#include <algorithm>

#include "archive/package_index.h"
#include "archive/tar_walk.h"
#include "fuzz.h"

using namespace wharf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::Parts(fuzz::Input(data, size), 3);
  if (parts.size() < 2) return 0;
  auto index = ParsePackageIndex(parts[0]);
  if (!index) return 0;
  std::string_view raw = parts[1];
  size_t number = 0, piece = raw.size();
  if (parts.size() > 2 && !parts[2].empty()) {
    number = static_cast<unsigned char>(parts[2][0]) % index->frames.size();
    if (parts[2].size() > 1) piece = 1 + static_cast<unsigned char>(parts[2][1]) * 7u;
  }
  // A decoder hands the walk no more than the frame's declared size.
  raw = raw.substr(0, std::min<uint64_t>(raw.size(), index->frames[number].raw_size));
  TarFrameWalk walk(*index, number);
  Status status;
  for (size_t at = 0; status && at < raw.size(); at += piece)
    status = walk.Feed(raw.data() + at, std::min(piece, raw.size() - at));
  if (status) (void)walk.Finish();
  return 0;
}
