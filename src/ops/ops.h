// The store operations as JSON results: the CLI runs them on a local store, the server runs
// them for API calls, and both print or send the same documents (docs/api.md).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/error.h"
#include "store/changes.h"
#include "store/data.h"
#include "store/settings.h"
#include "store/store.h"

namespace wharf::ops {

using Json = nlohmann::ordered_json;

/// Pruning on release (store/retention.h): whether publish and assign remove the versions
/// of the packages they release that the retention no longer needs, as gc would.
struct Prune {
  std::optional<bool> prune;  // nullopt: as the store's prune_on_release says
  int keep_versions = 0;      // 0: the store's `keep`
};

/// {name, version, size, sha256, already_present, dry_run, versions} and, when it pruned,
/// "pruned": {removed, kept_assigned, freed_bytes} (as gc's, for this package only).
Result<Json> Publish(Store& store, const std::string& archive, const std::string& index,
                     bool dry_run, int delta_bases, const Prune& prune = {});

enum class ChangeKind { kAssign, kUnassign, kRollback, kRefresh, kServiceSet, kPersist };
struct ChangeRequest {
  ChangeKind kind = ChangeKind::kAssign;
  std::string fec;
  std::vector<std::string> items;  // assign: NAME@VERSION; unassign: NAME; service: KEY=VALUE;
                                   // persist: absolute paths (none: no persistent data)
  std::optional<uint64_t> to;      // rollback
  std::string service;             // service set: its name
  int64_t interval = 3600;         // persist: seconds between snapshots (items: the paths)
  Prune prune{};                   // assign: prune the assigned packages' old versions
};
/// Runs one change; the new generation's summary with "dry_run" (assign: and "pruned").
Result<Json> Change(Store& store, const ChangeRequest& request, const ChangeOptions& options);

/// The FEC's current generation with "parent" and "history"; each history entry says which
/// of its versions the store no longer holds ("missing": a rollback to it is refused).
Result<Json> Show(const Store& store, const std::string& fec);
/// Every FEC's current generation.
Result<Json> ListFecs(const Store& store);
/// [{name, versions}]
Result<Json> ListPackages(const Store& store);

Json GenerationSummary(const Generation& generation);
std::string PackagesText(const Generation& generation);

/// A boot-script edit (store/changes.h): the new generation's summary, or
/// {"fec": "global", "stored": NAME} for a global script.
Result<Json> Init(Store& store, const std::string& fec, const InitEdit& edit, const ChangeOptions& options);

/// Retention (store/gc.h): {"removed": [{name, version, bytes}], "kept_assigned": [...],
/// "freed_bytes", "dry_run", "keep", "generations"}; 0 for a number: the store's setting.
Result<Json> Gc(Store& store, int keep_versions, int keep_generations, bool dry_run);
/// The store's retention setting: {keep, generations, prune_on_release}.
Result<Json> RetentionJson(const Store& store);
/// Changes what is given of it (store.json, under the store lock); the setting as it is then.
Result<Json> SetRetention(Store& store, std::optional<int> keep, std::optional<int> generations,
                          std::optional<bool> prune_on_release);
/// The versions of each of a FEC's generations that the store no longer holds, by number.
Result<std::map<uint64_t, std::vector<std::string>>> MissingByGeneration(const Store& store, const std::string& fec);

/// A snapshot's record as JSON (docs/formats.md).
Json SnapshotJson(const SnapshotRecord& record);
/// A FEC's persistent data snapshots (store/data.h): {"fec", "latest", "snapshots": [record]}.
Result<Json> DataList(const Store& store, const std::string& fec);
/// Makes snapshot `id` the one the FEC restores at its next boot: its record.
Result<Json> DataRestore(Store& store, const std::string& fec, const std::string& id);

/// The store's settings (store/settings.h): {"offline", "offline_lifetime_seconds", "changed"}.
Json StoreSettingsJson(const StoreSettings& settings);
/// `offline` given: marks the store offline (or online), with `lifetime` for its
/// generations when given, and re-signs every FEC's current generation under the new
/// setting: the settings with "refreshed" (the new generations' summaries) and "dry_run".
/// Without `offline`: the settings as they are.
Result<Json> StoreMode(Store& store, std::optional<bool> offline, std::optional<int64_t> lifetime,
                       const ChangeOptions& options);

/// "90s", "15m", "12h", "30d", "10y" (a bare number is days).
Result<int64_t> ParseDuration(const std::string& text, const std::string& what = "expires_in");

}  // namespace wharf::ops
