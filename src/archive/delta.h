// Deltas: a zstd patch that rebuilds one file of a new version from the same path in an
// older one (zstd's "patch from" mode: the old file is the dictionary). `wharf publish`
// writes them beside the archive, listed in deltas.json; an agent holding the old file
// fetches the patch instead of the file's frames. deltas.json is not signed and need not
// be: what a patch produces is checked against the file's sha256 in the signed index.
#pragma once

#include <cstdint>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "archive/package_index.h"
#include "base/error.h"

namespace wharf {

/// Neither side of a delta may be larger than this (it is held in memory to make it).
inline constexpr uint64_t kMaxDeltaFileSize = 512u << 20;
/// Patches up to this size ride inside deltas.json (base64): no request of their own.
inline constexpr uint64_t kMaxInlineDelta = 4096;
/// The "path" of a patch of package.json itself, against an older version's package.json.
inline constexpr std::string_view kIndexDeltaPath = "package.json";

struct DeltaEntry {
  std::string path;           // the file, as in package.json; kIndexDeltaPath for the index
  std::string base_sha256;    // the older content it applies to; "" for a file compressed
                              // on its own (a new file, or one in a frame shared with others)
  std::string target_sha256;  // the content it produces
  std::string file;           // beside package.json: "deltas/<n>.zst"; "" when inline
  uint64_t size = 0;
  std::string sha256;
  std::string data;           // inline: the patch itself
};

std::string DeltaIndexToJson(const std::vector<DeltaEntry>& deltas);
/// deltas.json is not signed (see above): all a hostile one may cost is a failed
/// optimisation. It is never bigger than this (a bigger one is not read: frames are fetched).
inline constexpr uint64_t kMaxDeltaIndexBytes = 16u << 20;
/// Checks deltas.json as a stream of events, keeping only the entries `keep` accepts (all
/// when it is empty): memory is what is kept, never a tree of the whole file. Refuses
/// nesting, strings or numbers a real one never has, and more than `max_kept` kept entries.
Result<std::vector<DeltaEntry>> ParseDeltaIndex(std::string_view json,
                                                const std::function<bool(const DeltaEntry&)>& keep = {},
                                                size_t max_kept = SIZE_MAX);
/// The same from the file `path`, read in pieces.
Result<std::vector<DeltaEntry>> ReadDeltaIndex(const std::string& path, const std::function<bool(const DeltaEntry&)>& keep,
                                               size_t max_kept);

/// The bytes of file `entry` of an archive, from the frames that hold them (checked).
Result<std::string> ReadFileFromArchive(const std::string& archive_path, const PackageIndex& index,
                                        const FileEntry& entry);
/// A patch turning `base` into `target`.
Result<std::string> MakeDelta(std::string_view base, std::string_view target, int level);
/// Rebuilds the target from the base file at `base_path` ("" for a patch made without a
/// base) and a patch, handing its bytes to `out` in pieces. Refuses output beyond `max_size`.
Status ApplyDelta(const std::string& base_path, std::string_view delta, uint64_t max_size,
                  const std::function<Status(const char*, size_t)>& out);
/// Patched files above this are rebuilt in place (ApplyDeltaToFile).
inline constexpr uint64_t kPatchInPlaceSize = 4u << 20;
/// The same into the open, empty file `fd` (read-write; `path` for errors), which gets
/// exactly `size` bytes; `seen` is handed each piece once written (for its hash). A file
/// above kPatchInPlaceSize is reserved, mapped and decoded into directly, base and target
/// let go every MiB, so memory stays bounded whatever its size; a smaller one (or one that
/// cannot be reserved or mapped) is rebuilt in memory, whose window takes up to its size.
Status ApplyDeltaToFile(const std::string& base_path, std::string_view delta, uint64_t size, int fd,
                        const std::string& path, const std::function<void(const char*, size_t)>& seen);

/// The patches an agent holding an older version (or only some of its files) can take
/// instead of frames, written into `dir`/deltas/ (or inline) and listed in `dir`/deltas.json:
/// - for each file that no older version holds with the same content, a patch against the
///   same path in each older version (`older`: archive, index, package.json path), and one
///   of the file on its own when it shares its frames with other files; each kept only
///   when smaller than the frames it saves;
/// - a patch of package.json against each older version's.
Status WriteDeltas(const std::string& dir, const std::string& archive_path, const PackageIndex& index,
                   const std::string& index_json,
                   const std::vector<std::pair<std::string, PackageIndex>>& older, int level);

}  // namespace wharf
