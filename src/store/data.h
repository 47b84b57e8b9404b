// A FEC's persistent data in the store (DESIGN, "The store"; docs/formats.md):
//
//   fecs/<FEC>/data/<id>.tar.zst   a snapshot (src/archive/snapshot.h), never rewritten
//   fecs/<FEC>/data/<id>.json      its record: when, from which generation, paths, size, sha256
//   fecs/<FEC>/data/latest.json    the record of the snapshot a boot restores
//
// A snapshot becomes "latest" only once it is in place whole and checked, and latest.json
// is replaced in one rename, so a cut upload or a killed writer leaves the previous latest
// as it was. The newest `keep` snapshots are kept, and always the latest one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "archive/snapshot.h"
#include "base/error.h"
#include "store/store.h"

namespace wharf {

inline constexpr int kDefaultSnapshotKeep = 5;

struct SnapshotRecord {
  std::string id;          // "20261125T210500.123Z-1a2b": sorts by time
  std::string fec;
  int64_t created = 0;
  uint64_t generation = 0;  // the generation the FEC ran when it was taken
  std::vector<std::string> paths;
  uint64_t size = 0;        // of the .tar.zst
  std::string sha256;
  uint64_t entries = 0;
  uint64_t bytes = 0;       // file contents, uncompressed
};

std::string SnapshotRecordToJson(const SnapshotRecord& record);
/// Id, FEC name, hash and paths (1 to 64, each a valid absolute path).
Status ValidateSnapshotRecord(const SnapshotRecord& record);
/// Parses and validates.
Result<SnapshotRecord> ParseSnapshotRecord(std::string_view json);
/// A new id for a snapshot taken now (UTC to the millisecond, then random: ids sort by time).
std::string NewSnapshotId();
Status ValidateSnapshotId(std::string_view id);

struct SnapshotLimits {
  int keep = kDefaultSnapshotKeep;              // snapshots kept per FEC (always the latest)
  uint64_t max_data = kDefaultSnapshotMaxData;  // unpacked bytes of one snapshot
  uint64_t quota = 0;                           // bytes of snapshots kept per FEC; 0: none
};

/// Copies `archive` into the FEC's data folder, checks the copy against `claimed` (size,
/// sha256), its unpacked size against `max_data` and entry by entry against its paths, and
/// makes it the latest; then drops the oldest beyond `keep`, and beyond what `quota` holds
/// (oldest first, never the new one). A snapshot bigger than the quota alone is refused
/// and nothing is kept. Returns the record as stored (entries and bytes filled in).
Result<SnapshotRecord> AddSnapshot(Store& store, const SnapshotRecord& claimed, const std::string& archive,
                                   const SnapshotLimits& limits);
inline Result<SnapshotRecord> AddSnapshot(Store& store, const SnapshotRecord& claimed, const std::string& archive,
                                          int keep = kDefaultSnapshotKeep) {
  return AddSnapshot(store, claimed, archive, SnapshotLimits{keep});
}
/// Refuses a snapshot of `size` bytes that the per-FEC `quota` cannot hold (0: no quota).
Status CheckSnapshotQuota(const std::string& fec, uint64_t size, uint64_t quota);

struct SnapshotList {
  std::vector<SnapshotRecord> snapshots;  // newest first
  std::string latest;                     // its id; empty when there is none
};
Result<SnapshotList> ListSnapshots(const Store& store, const std::string& fec);
/// Makes snapshot `id` (checked again first) the one a boot restores: for a replaced FEC,
/// or to go back to older data.
Result<SnapshotRecord> ChooseLatestSnapshot(Store& store, const std::string& fec, const std::string& id);

/// Store-relative paths of a FEC's data files.
std::string SnapshotArchivePath(const std::string& fec, const std::string& id);
std::string LatestSnapshotPath(const std::string& fec);

}  // namespace wharf
