// RAII owners of libzstd contexts, for the few files that compress or decompress.
#pragma once

#include <zstd.h>

#include <memory>

namespace wharf {

struct ZstdCctxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct ZstdDctxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};
using ZstdCctx = std::unique_ptr<ZSTD_CCtx, ZstdCctxDeleter>;
using ZstdDctx = std::unique_ptr<ZSTD_DCtx, ZstdDctxDeleter>;

}  // namespace wharf
