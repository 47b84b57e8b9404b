// package.json.zst: the package index compressed for the wire.
#include "archive/package_index.h"
#include "archive/zstd_handles.h"

namespace wharf {

std::string CompressIndex(std::string_view json) {
  std::string out(ZSTD_compressBound(json.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), json.data(), json.size(), 19);
  out.resize(ZSTD_isError(n) ? 0 : n);
  return out;
}

Result<std::string> DecompressIndex(std::string_view compressed, uint64_t size) {
  auto refuse = [&] {
    return Fail(ErrorCode::kCorrupt, "package.json.zst is not one zstd frame of " + std::to_string(size) +
                                         " bytes");
  };
  if (ZSTD_getFrameContentSize(compressed.data(), compressed.size()) != size ||
      ZSTD_findFrameCompressedSize(compressed.data(), compressed.size()) != compressed.size())
    return refuse();
  std::string json(size, '\0');
  size_t n = ZSTD_decompress(json.data(), json.size(), compressed.data(), compressed.size());
  if (ZSTD_isError(n) || n != size) return refuse();
  return json;
}

}  // namespace wharf
