// Which parts of an archive a reader needs when it already holds some of the files: the
// pure half of an incremental update. A file's bytes are the tar stream's
// [data_offset, data_offset + size), which lie in one or more frames; a frame is
// fetched when it holds bytes of a file the reader lacks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "archive/package_index.h"

namespace wharf {

struct ByteRange {
  uint64_t offset = 0;
  uint64_t size = 0;
  bool operator==(const ByteRange&) const = default;
};

/// The frames (ascending, unique) that hold bytes of the given files.
std::vector<uint32_t> FramesOfFiles(const PackageIndex& index, const std::vector<size_t>& files);

/// The archive byte ranges of `frames` (ascending), neighbours merged and ranges closer
/// than `gap` bytes joined, so that one request fetches what a few would.
std::vector<ByteRange> CoalesceFrames(const PackageIndex& index, const std::vector<uint32_t>& frames,
                                      uint64_t gap);

struct FetchPlan {
  std::vector<size_t> missing;      // files (indexes into index.files) to take from frames
  std::vector<uint32_t> frames;     // frames to fetch
  std::vector<ByteRange> ranges;    // the requests that fetch them
  uint64_t bytes = 0;               // compressed bytes of those frames
};

/// Plans an update: every non-empty file for which `have(sha256)` is false is missing.
FetchPlan PlanFetch(const PackageIndex& index, const std::function<bool(const std::string&)>& have,
                    uint64_t gap);

}  // namespace wharf
