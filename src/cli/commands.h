// The `wharf` commands (publisher and admin side). Each prints data on stdout, one-line
// messages on stderr, and returns the process exit code:
//   0 done (or nothing to do), 1 failed, 2 usage error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "archive/pack.h"
#include "cli/output.h"
#include "store/changes.h"

namespace wharf {

struct StoreArgs {
  std::string store;       // folder, or:
  std::string server;      // a `wharf serve` URL (with token)
  std::string token;
  std::string key;         // signing key (.key) for changes
  std::string expires_in = "30d";  // lifetime of new generations: 90s, 12h, 30d
  bool dry_run = false;
  bool json = false;
  bool force = false;   // assign: accept a configuration made for another software version
  int delta_bases = 2;  // publish: earlier versions to write patches against (0: none)
  // publish, assign: prune the released packages' old versions as gc would (--prune,
  // --no-prune; unset: as the store's retention says); `keep`: versions kept (0: the store's).
  std::optional<bool> prune;
  int keep = 0;
};

int RunKeygen(const std::string& out, bool json);
/// `service_specs`: NAME=COMMAND ARGS; `services_file` (else DIR/services.toml, when
/// present) adds the other fields. `matches`: NAME@VERSION of the software a configuration
/// package is made for.
int RunPack(const std::string& dir, PackOptions options, const std::vector<std::string>& service_specs,
            const std::string& services_file, const std::vector<std::string>& matches, bool json);
/// Publishes each archive, with its <name>-<version>.package.json beside it.
int RunPublish(const std::vector<std::string>& archives, const StoreArgs& args);
int RunAssign(const std::string& fec, const std::vector<std::string>& specs, const StoreArgs& args);
/// Declares the FEC's persistent paths and snapshot interval ("1h"), or with `none` drops them.
/// A FEC's persistent data snapshots (`wharf data list`), and the choice of the one its
/// next boot restores (`wharf data restore FEC --snapshot ID`).
int RunDataList(const std::string& fec, const StoreArgs& args);
int RunDataRestore(const std::string& fec, const std::string& id, const StoreArgs& args);
int RunPersist(const std::string& fec, const std::vector<std::string>& paths, const std::string& interval,
               bool none, const StoreArgs& args);
int RunUnassign(const std::string& fec, const std::vector<std::string>& names, const StoreArgs& args);
/// Per-FEC settings of one service (KEY=VALUE; "KEY=" clears): a new generation.
int RunServiceSet(const std::string& fec, const std::string& service,
                  const std::vector<std::string>& settings, const StoreArgs& args);
int RunRollback(const std::string& fec, std::optional<uint64_t> to, const StoreArgs& args);
/// Re-signs the current generation of each FEC (all when `fecs` is empty).
int RunRefresh(const std::vector<std::string>& fecs, const StoreArgs& args);
int RunShow(const std::string& fec, const StoreArgs& args);
/// `wharf store show|offline|online`: the store's settings; offline/online sets them (a
/// lifetime like "10y" for an offline store's generations) and re-signs every FEC.
int RunStoreMode(std::optional<bool> offline, const std::string& lifetime, const StoreArgs& args);
/// Lists FECs and their current generations, or the published packages.
int RunList(const StoreArgs& args, bool packages);
/// wharf init add|link|remove: the FEC's boot scripts (store folder only).
int RunInitEdit(const std::string& fec, const InitEdit& edit, const StoreArgs& args);
/// Drops old versions: keeps the newest `keep` of each package and every version a FEC's
/// generations within the retention (its last `generations` releases) name; 0: the store's.
int RunGc(int keep, int generations, const StoreArgs& args);
/// Shows the store's retention setting, or changes what is given (store folder only).
int RunRetention(std::optional<int> keep, std::optional<int> generations, std::optional<bool> prune_on_release,
                 const StoreArgs& args);
/// Server only: the fleet (or one FEC): wanted and running generations, heartbeats, services.
int RunStatus(const std::string& fec, const StoreArgs& args);
/// A FEC's generations (those that cannot be rolled back to marked) and, from a server, its
/// activations and dev versions, or what it ran at `at` (server only).
int RunHistory(const std::string& fec, const std::string& at, const StoreArgs& args);
/// Server only: who did what, when, from where.
int RunAudit(const std::string& target, int limit, const StoreArgs& args);

}  // namespace wharf
