// Which versions a store must keep so that its generations stay usable (DESIGN, "Retention"):
//
// - A FEC's generations *within the retention* are, walking back from its current one, every
//   generation until a (G+1)-th different release would begin: its last G releases (a
//   release: what a rollback brings back, its packages, service settings and boot scripts),
//   however many refreshes and re-signs came between them (a server that re-signs daily
//   must not push the previous release out). G is the store's
//   `generations` (default 3, the agents' own `keep`, so that whatever a FEC still holds
//   locally a wiped FEC can fetch again). Every one of them can be rolled back to.
// - gc keeps the newest `keep` versions of each package by publication time and, whatever
//   their age, every version a generation within the retention names (store/gc.h).
// - No change signs a generation naming a version the store no longer holds (changes.cc).
//
// The store's setting is "retention" in its store.json (store/settings.h), copied with it:
//   "keep": 3                  versions kept per package, besides those in use
//   "generations": 3           G, above
//   "prune_on_release": false  whether publish and assign prune as gc would
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/error.h"
#include "generation/generation.h"
#include "store/store.h"

namespace wharf {

struct Retention {
  int keep_versions = 3;
  int keep_generations = 3;
  bool prune_on_release = false;

  bool operator==(const Retention&) const = default;
};

/// The store's setting; the defaults when it has none.
Result<Retention> ReadRetention(const Store& store);
/// Writes the setting into store.json (atomically, under the store lock; the other settings
/// stay). Refuses numbers below 1.
Status WriteRetention(const Store& store, const Retention& retention);

/// Index in `history` (ascending by number) of the oldest generation within the retention of
/// `releases` different releases (see above); history.size() when it is empty.
size_t RetentionStart(const std::vector<Generation>& history, int releases);

/// The versions among `packages` that the store no longer holds as they are named
/// ("name@version"): package.json gone (gc), other bytes in its place (republished after
/// gc), or the archive gone. `cache` (package.json path -> sha256, "" when absent) saves
/// re-hashing across generations.
std::vector<std::string> MissingVersions(const Store& store, const std::vector<PackageRef>& packages,
                                         std::map<std::string, std::string>* cache = nullptr);

}  // namespace wharf
