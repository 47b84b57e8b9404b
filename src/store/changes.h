// The changes an operator makes to a FEC's desired state. Each writes one new signed
// generation (number + 1, parent hash) under the store lock; none rewrites an old one.
// On a store marked offline (store/settings.h) every one is signed offline, with the
// store's offline lifetime in place of the one asked for.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "crypto/sign.h"
#include "generation/generation.h"
#include "store/store.h"

namespace wharf {

struct ChangeOptions {
  const PrivateKey* key = nullptr;  // required unless dry_run
  int64_t now = 0;
  int64_t lifetime_seconds = kDefaultLifetimeSeconds;
  bool dry_run = false;  // compute and return the generation, write nothing
  bool force = false;    // accept configurations made for other software versions (recorded)
  // Whether the change may alter what runs as root on the FEC (service settings, boot
  // scripts): false for a caller without the configure right (docs/api.md), whose rollback
  // is then refused when it would bring back other settings or scripts.
  bool may_configure = true;
};

struct NameVersion {
  std::string name;
  std::string version;
};
/// Parses "NAME@VERSION" (both validated).
Result<NameVersion> ParseNameVersion(const std::string& text);

/// Puts these versions on the FEC (replacing other versions of the same packages).
Result<Generation> Assign(Store& store, const std::string& fec, const std::vector<NameVersion>& packages,
                          const ChangeOptions& options);
/// Takes these packages off the FEC.
Result<Generation> Unassign(Store& store, const std::string& fec,
                            const std::vector<std::string>& names, const ChangeOptions& options);
/// Publishes a new generation with the packages of generation `to` (default: the newest
/// earlier generation whose packages differ from the current ones).
Result<Generation> Rollback(Store& store, const std::string& fec, std::optional<uint64_t> to,
                            const ChangeOptions& options);
/// Sets (or with "KEY=" clears) per-FEC settings of one service: a new generation with
/// the same packages (src/service/definition.h, SetServiceOverrides).
Result<Generation> SetService(Store& store, const std::string& fec, const std::string& service,
                              const std::vector<std::string>& settings, const ChangeOptions& options);
struct InitEdit {
  enum Kind { kAdd, kLink, kRemove } kind = kAdd;
  std::string name;        // the script's name (its order)
  std::string file;        // kAdd: the local file to store
  int timeout = 0;         // seconds; 0: keep (new scripts: 60)
  std::string on_failure;  // "stop" | "continue"; empty: keep the generation's
};
/// Adds a script to the FEC's init/ (or, for FEC "global", to fecs/global/init/ without a
/// generation), links a global one (stored once), or removes one: a new generation whose
/// init list names each script with its sha256.
Result<Generation> EditInit(Store& store, const std::string& fec, const InitEdit& edit,
                            const ChangeOptions& options);
/// Declares the FEC's persistent paths and snapshot interval (no paths: none).
Result<Generation> SetPersist(Store& store, const std::string& fec, const Persist& persist,
                              const ChangeOptions& options);
/// Re-signs the FEC's current packages with a later expiry (a daily timer's job).
Result<Generation> Refresh(Store& store, const std::string& fec, const ChangeOptions& options);
/// Refresh, when the FEC's current generation expires within `margin_seconds` of
/// options.now (judged under the store lock, so never after a change that just wrote a
/// fresh one); nothing when it does not.
Result<std::optional<Generation>> RefreshIfExpiring(Store& store, const std::string& fec, int64_t margin_seconds,
                                                    const ChangeOptions& options);

}  // namespace wharf
