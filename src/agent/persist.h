// The FEC's persistent data (DESIGN, "The agent"): snapshots of the folders the generation
// declares, taken at its interval and on a clean shutdown, sent to the store; and at boot,
// the latest snapshot put back into declared folders that are missing or empty, before any
// service starts.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/layout.h"
#include "base/error.h"
#include "fetch/api_client.h"
#include "generation/generation.h"
#include "store/data.h"

namespace wharf {

/// Where snapshots go and where they come back from.
class DataChannel {
 public:
  virtual ~DataChannel() = default;
  /// Stores the snapshot at `archive` (claimed size and sha256 in `claimed`).
  virtual Result<SnapshotRecord> Send(const SnapshotRecord& claimed, const std::string& archive) = 0;
  /// The latest snapshot's record, or nothing when the FEC has none yet.
  virtual Result<std::optional<SnapshotRecord>> Latest() = 0;
  /// Copies the snapshot's archive to the new file `dest` (checked by the caller).
  virtual Status Fetch(const SnapshotRecord& record, const std::string& dest) = 0;
  virtual std::string Describe() const = 0;
};

/// The server's API with the agent's token (preferred), else a file:// store written
/// directly; nullptr (with the reason in `why`) when neither is configured.
std::unique_ptr<DataChannel> OpenDataChannel(const std::string& fec, const std::string& server,
                                             const std::string& token, const std::vector<std::string>& stores,
                                             int keep, std::string& why);

/// Packs the declared folders and sends the snapshot. kNotFound when the generation
/// declares none. Holds the agent's lock while packing (a sync never runs under it).
Result<SnapshotRecord> TakeSnapshot(const Layout& layout, const Generation& active, DataChannel& channel,
                                    int64_t now);

struct RestoreReport {
  std::vector<std::string> restored;  // the folders put back
  std::string snapshot;               // the id used; empty when nothing was needed or there was none
  bool none_stored = false;           // folders were empty but the FEC has no snapshot yet
};
/// Restores, from the latest snapshot, each declared folder that is missing or empty.
Result<RestoreReport> RestorePersistentData(const Layout& layout, const Generation& active, DataChannel& channel);
/// The declared folders that are missing or empty now.
std::vector<std::string> EmptyPersistentPaths(const Layout& layout, const Generation& active);

}  // namespace wharf
