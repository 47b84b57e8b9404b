// Snapshots of a FEC's persistent data (DESIGN, "The agent"): a plain POSIX tar compressed
// with zstd (`tar --zstd -tf` lists it), entries relative to "/" under the declared
// persistent folders, with their modes, owners and modification times.
//
// Unlike a package, a snapshot is made on the FEC from live data and read back on a FEC
// that may be new hardware, so both ends check every entry: a normalised relative path
// inside one declared folder, only files, folders and links that stay inside it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace wharf {

struct SnapshotStats {
  uint64_t entries = 0;
  uint64_t bytes = 0;  // file contents, uncompressed
};

/// Packs the persistent folders `paths` (absolute, as on the FEC) found under `root` into
/// the new file `out`. A missing folder is left out (restored as nothing); a path that is
/// not a folder is refused. Sockets and fifos inside are skipped (they are made at run
/// time). A file that shrinks while it is read fails the snapshot: the next one retries.
Result<SnapshotStats> PackSnapshot(const std::string& root, const std::vector<std::string>& paths,
                                   const std::string& out, int level = 3);

/// Unpacked bytes (the tar stream) a store accepts in one snapshot by default.
inline constexpr uint64_t kDefaultSnapshotMaxData = 4ull << 30;

/// Reads the whole snapshot, checking every entry against `paths` (see above) and that
/// the stream is whole. What a store checks before a snapshot may become "latest".
/// A snapshot whose zstd stream unpacks to more than `max_data` bytes is refused
/// (kRejected) without decoding more than that: a frame declaring more, before any.
Result<SnapshotStats> CheckSnapshot(const std::string& archive, const std::vector<std::string>& paths,
                                    uint64_t max_data = kDefaultSnapshotMaxData);

/// Restores the entries under `path` (one of the snapshot's folders `paths`, all of which
/// its entries are checked against) to `root` + `path`,
/// which must be missing or an empty folder: they are unpacked into a hidden folder beside
/// it and renamed into place, so a crash leaves either nothing or the whole folder.
/// Owners are restored when running as root. Returns the entries written.
Result<SnapshotStats> RestoreSnapshotPath(const std::string& archive, const std::string& root,
                                          const std::string& path, const std::vector<std::string>& paths);

/// True when `root` + `path` is missing or an empty folder: what a boot restores.
bool PersistentPathEmpty(const std::string& root, const std::string& path);

}  // namespace wharf
