// RAII owners of libzstd contexts, for the few files that compress or decompress.
#pragma once

// The advanced decoding parameters (ZSTD_d_stableOutBuffer: decoding straight into the
// caller's buffer, zstd >= 1.4.4): include this before any other zstd header.
#ifndef ZSTD_STATIC_LINKING_ONLY
#define ZSTD_STATIC_LINKING_ONLY
#endif
#include <zstd.h>
#include <zstd_errors.h>

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
