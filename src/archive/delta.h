// Deltas: a zstd patch that rebuilds one file of a new version from the same path in an
// older one (zstd's "patch from" mode: the old file is the dictionary). `wharf publish`
// writes them beside the archive, listed in deltas.json; an agent holding the old file
// fetches the patch instead of the file's frames. deltas.json is not signed and need not
// be: what a patch produces is checked against the file's sha256 in the signed index.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "archive/package_index.h"
#include "base/error.h"

namespace wharf {

/// Files smaller than this get no delta: their frames are cheap already.
inline constexpr uint64_t kMinDeltaFileSize = 64 * 1024;
/// Neither side of a delta may be larger than this (it is held in memory to make it).
inline constexpr uint64_t kMaxDeltaFileSize = 512u << 20;

struct DeltaEntry {
  std::string path;           // the file, as in package.json
  std::string base_sha256;    // the older content it applies to
  std::string target_sha256;  // the content it produces
  std::string file;           // beside package.json: "deltas/<n>.zst"
  uint64_t size = 0;
  std::string sha256;
};

std::string DeltaIndexToJson(const std::vector<DeltaEntry>& deltas);
Result<std::vector<DeltaEntry>> ParseDeltaIndex(std::string_view json);

/// The bytes of file `entry` of an archive, from the frames that hold them (checked).
Result<std::string> ReadFileFromArchive(const std::string& archive_path, const PackageIndex& index,
                                        const FileEntry& entry);
/// A patch turning `base` into `target`.
Result<std::string> MakeDelta(std::string_view base, std::string_view target, int level);
/// Rebuilds the target from the base file at `base_path` and a patch, handing its bytes
/// to `out` in pieces. Refuses output beyond `max_size`.
Status ApplyDelta(const std::string& base_path, std::string_view delta, uint64_t max_size,
                  const std::function<Status(const char*, size_t)>& out);

/// For every file of `index` above kMinDeltaFileSize that an older version (its archive
/// and index) holds at the same path with other content, a patch smaller than the file's
/// own frames, written into `dir`/deltas/ and listed in `dir`/deltas.json.
Status WriteDeltas(const std::string& dir, const std::string& archive_path, const PackageIndex& index,
                   const std::vector<std::pair<std::string, PackageIndex>>& older, int level);

}  // namespace wharf
