// A store's own settings: store.json at its root (copied with it, harmless to serve).
// Today one: whether the store is offline (a DVD, a copied folder a FEC boots from), so
// that every generation written for it is signed `offline` with a long lifetime.
#pragma once

#include <cstdint>
#include <string>

#include "base/error.h"

namespace wharf {

inline constexpr int64_t kDefaultOfflineLifetimeSeconds = 10 * 365 * 86400;  // 10 years

struct StoreSettings {
  bool offline = false;
  int64_t offline_lifetime = kDefaultOfflineLifetimeSeconds;  // seconds; used when offline
  int64_t changed = 0;  // when the settings were last written (0: never)

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
