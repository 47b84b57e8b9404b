// A store's own settings: store.json at its root (copied with it, harmless to serve).
// Whether the store is offline (a DVD, a copied folder a FEC boots from), so that every
// generation written for it is signed `offline` with a long lifetime; and its retention
// (store/retention.h: versions kept, releases kept for rollback, pruning on release).
#pragma once

#include <cstdint>
#include <string>

#include "base/error.h"

namespace wharf {

inline constexpr int64_t kDefaultOfflineLifetimeSeconds = 10 * 365 * 86400;  // 10 years

struct StoreSettings {
  bool offline = false;
  int64_t offline_lifetime = kDefaultOfflineLifetimeSeconds;  // seconds; used when offline
  int64_t changed = 0;  // when the store last went online or offline (0: never)
  // "retention": {"keep", "generations", "prune_on_release"}; absent: these.
  int keep_versions = 3;
  int keep_generations = 3;
  bool prune_on_release = false;

  bool operator==(const StoreSettings&) const = default;
};

/// The settings of the store at `root`; the defaults when it has no store.json.
Result<StoreSettings> ReadStoreSettings(const std::string& root);
/// Writes store.json atomically. REQUIRES: the store lock held.
Status WriteStoreSettings(const std::string& root, const StoreSettings& settings);
/// The lifetime of a generation written for a store with `settings`: the offline
/// lifetime when it is offline, else `asked`.
int64_t GenerationLifetime(const StoreSettings& settings, int64_t asked);

}  // namespace wharf
