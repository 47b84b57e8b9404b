// One compressed frame of an archive from a store or a mirror, checked against its index
// entry and decoded (CheckFrame, DecodeFrame). The harness writes the entry the input
// needs to get past the sha256 (which a hostile store can always match): its size and
// hash, the content size the frame declares (else one of the input's choosing), and a
// zstd_window_log from the input's last byte.
#include <zstd.h>

#include "archive/package_index.h"
#include "archive/reader.h"
#include "crypto/sha256.h"
#include "fuzz.h"

using namespace wharf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view compressed = fuzz::Input(data, size);
  if (compressed.empty()) return 0;
  PackageIndex index;
  index.name = "fuzz";
  index.version = "1";
  index.archive = "fuzz-1.tar.zst";
  unsigned last = static_cast<unsigned char>(compressed.back());
  index.zstd_window_log = last % 3 == 0 ? 0 : kMinWindowLog + static_cast<int>(last % (kMaxWindowLog - kMinWindowLog + 1));
  uint64_t declared = ZSTD_getFrameContentSize(compressed.data(), compressed.size());
  uint64_t raw_size = declared <= kMaxFrameRawSize ? declared : 1 + last * 64;
  index.frames.push_back({0, compressed.size(), 0, raw_size, Sha256Hex(compressed)});
  if (!CheckFrame(index, 0, compressed)) return 0;
  std::string raw;
  if (DecodeFrame(index, 0, compressed, raw)) WHARF_FUZZ_CHECK(raw.size() == raw_size);
  return 0;
}
