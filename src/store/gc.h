// Retention: which published versions a store may drop. Keeps the newest `keep_versions`
// of each package and configuration (by publication time) and every version that a FEC's
// generations within the retention name (its last `keep_generations` releases: see
// store/retention.h), whatever its age: every one of those generations can be rolled back
// to and synced by a wiped FEC.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "store/store.h"

namespace wharf {

struct GcOptions {
  int keep_versions = 3;
  int keep_generations = 3;  // releases (what a rollback brings back) per FEC; the agents' `keep`
  bool dry_run = false;
  std::vector<std::string> only;  // package names to consider (a release prunes its own); empty: all
};

struct GcVersion {
  std::string name;
  std::string version;
  uint64_t bytes = 0;
  std::string area;  // "software", "configuration", "fecs/<FEC>/configuration"
};

struct GcReport {
  std::vector<GcVersion> removed;        // (or that would be, in a dry run)
  std::vector<GcVersion> kept_assigned;  // older than the newest N, but a FEC names them
  uint64_t freed_bytes = 0;
  std::vector<GcVersion> removed_scripts;  // boot script blobs: name = store path, area "init"
};

/// Plans and (unless dry_run) removes, under the store lock. A removed version first
/// becomes a hidden folder (never served), then is deleted.
Result<GcReport> CollectGarbage(Store& store, const GcOptions& options);
/// The boot script blobs (fecs/<FEC or global>/init-sha256/<sha256>) that no FEC's current
/// or kept generation names and no init/<name> link points at: removed (unless dry_run)
/// and added to `report`. REQUIRES: the store lock held.
Status CollectInitScripts(Store& store, const GcOptions& options, GcReport& report);

}  // namespace wharf
