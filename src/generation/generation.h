// A generation: the whole desired state of one FEC, signed. Its rules are pure functions
// over values, shared by the tools that write generations and the agent that applies them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace wharf {

inline constexpr int kGenerationFormat = 1;
inline constexpr int64_t kDefaultLifetimeSeconds = 30 * 24 * 3600;

/// One package a generation names, with the hashes that pin its bytes.
struct PackageRef {
  std::string name;
  std::string version;
  std::string prefix;          // absolute install location: "/opt/demo"
  std::string archive;         // store-relative: "software/<name>/<version>/<name>-<version>.tar.zst"
  uint64_t archive_size = 0;
  std::string archive_sha256;
  std::string index;           // store-relative: "software/<name>/<version>/package.json"
  uint64_t index_size = 0;
  std::string index_sha256;

  bool operator==(const PackageRef&) const = default;
};

/// A configuration package (its archive lives under configuration/ or
/// fecs/<FEC>/configuration/ rather than software/).
bool IsConfiguration(const PackageRef& ref);

/// A configuration assigned beside a software version other than the one it was made for,
/// accepted with `--force` and recorded so that anyone reading the generation sees it.
struct ForcedMatch {
  std::string configuration;  // NAME@VERSION of the configuration package
  std::string wanted;         // NAME@VERSION it was made for
  std::string found;          // NAME@VERSION the generation has, or "" when it has none

  bool operator==(const ForcedMatch&) const = default;
};

/// The FEC's persistent data: paths the agent packs at `interval` and on clean shutdown,
/// sends to the store, and restores at boot when they are missing or empty.
struct Persist {
  std::vector<std::string> paths;  // absolute, normalised, sorted, apart from package prefixes
  int64_t interval = 3600;         // seconds

  bool operator==(const Persist&) const = default;
};

/// A boot script the FEC runs after activation, in name order, pinned by sha256.
struct InitScript {
  std::string name;     // [A-Za-z0-9][A-Za-z0-9._-]*: the order is the names' byte order
  /// Store-relative: the script's bytes by content, "fecs/<FEC or global>/init-sha256/<sha256>"
  /// (InitBlobPath). Generations written before scripts were stored by content name
  /// "fecs/<FEC or global>/init/<name>"; they still parse, and agents fetch the blob of
  /// their sha256 first (InitFetchPaths).
  std::string path;
  uint64_t size = 0;
  std::string sha256;
  int timeout = 60;     // seconds; then the script's process group is killed

  bool operator==(const InitScript&) const = default;
};

struct Generation {
  int format = kGenerationFormat;
  std::string fec;
  uint64_t number = 0;
  std::string parent;  // sha256 of the previous generation's exact bytes; "" for the first
  int64_t created = 0;
  int64_t expires = 0;
  /// Written for an offline store (a DVD, a copied folder): a FEC reading it from a medium
  /// attached to it may run it past `expires` (CheckAcceptable, docs/security.md).
  bool offline = false;
  std::vector<PackageRef> packages;  // sorted by name
  /// Per-FEC overrides of the packages' service definitions, a JSON object
  /// {"NAME": {"dev": true, "env": {...}, ...}}; empty: none (src/service/definition.h).
  std::string services;
  std::vector<InitScript> init;  // sorted by name
  bool init_stop_on_failure = false;  // a failing script stops the ones after it
  std::vector<ForcedMatch> forced;    // configuration mismatches accepted with --force
  Persist persist;                    // no paths: no persistent data
};

/// "fecs/<owner>/init-sha256/<sha256>": where a store keeps one version of a boot script of
/// `owner` (a FEC, or "global" for scripts FECs link), immutable once written.
std::string InitBlobPath(std::string_view owner, std::string_view sha256);
/// The owner ("fec01", "global") of a script's store path of either shape.
std::string InitOwner(const InitScript& script);
/// The store paths to try for `script`'s bytes, best first: the blob of its sha256, then
/// (for a generation of the old shape) the path it names.
std::vector<std::string> InitFetchPaths(const InitScript& script);

/// Deterministic JSON (fixed key order, times as "YYYY-MM-DDTHH:MM:SSZ").
std::string GenerationToJson(const Generation& generation);
/// Parses and validates (ValidateGeneration).
Result<Generation> ParseGeneration(std::string_view json);
/// Names, versions and prefixes valid; packages sorted and unique; prefixes not
/// overlapping; store paths of the canonical shape; hashes 64 hex digits; expires > created.
Status ValidateGeneration(const Generation& generation);

/// The packages of `current` with `changes` put in (a package of the same name is
/// replaced). Refuses two versions of one package among `changes`, and any overlap of
/// prefixes in the result.
Result<std::vector<PackageRef>> AssignPackages(const std::vector<PackageRef>& current,
                                               const std::vector<PackageRef>& changes);
/// The packages of `current` less `names`; refuses a name that is not assigned.
Result<std::vector<PackageRef>> UnassignPackages(const std::vector<PackageRef>& current,
                                                 const std::vector<std::string>& names);

/// The generation that follows `parent` (whose exact bytes are `parent_json`), or the
/// first one when there is none.
Generation NextGeneration(std::string_view fec, const std::optional<Generation>& parent,
                          std::string_view parent_json, std::vector<PackageRef> packages,
                          int64_t now, int64_t lifetime_seconds);

/// The generation a rollback restores, from `history` (every generation of one FEC, in
/// ascending number, the last one current): `to` when given, else the newest earlier
/// generation whose packages differ from the current ones (so two rollbacks in a row
/// go back and forth).
Result<Generation> RollbackTarget(const std::vector<Generation>& history,
                                  std::optional<uint64_t> to);

/// The configurations among `packages` whose declared software version (`matches`, by
/// configuration name, from their package.json) is not the one in `packages`.
struct ConfigurationMatches {
  std::string configuration;  // NAME@VERSION
  std::vector<std::pair<std::string, std::string>> matches;  // (name, version)
};
std::vector<ForcedMatch> ConfigurationMismatches(const std::vector<PackageRef>& packages,
                                                 const std::vector<ConfigurationMatches>& declared);

/// The configuration packages a service of the software package named `package` reads,
/// among `configurations` (every configuration package of one generation, with the
/// software it declares with `matches`): those named in `declared` (the service's
/// `configuration` field) when it is given, else each one whose `matches` names `package`
/// (any version). A declared name the generation lacks is left out. "NAME@VERSION", in
/// name order.
std::vector<std::string> ConfigurationsRead(std::string_view package,
                                            const std::optional<std::vector<std::string>>& declared,
                                            const std::vector<ConfigurationMatches>& configurations);

/// What an agent has already accepted: the floor for numbers and for time.
struct AcceptedFloor {
  uint64_t number = 0;   // highest generation number applied
  int64_t created = 0;   // newest `created` applied: the clock is never believed below it
  std::string sha256;    // of generation `number`'s exact bytes: the anchor of the parent
                         // chain; "" when unknown (a state file older than the check)
};

struct Acceptance {
  bool clock_behind = false;  // the clock read earlier than the floor; the floor was used
  int64_t effective_now = 0;
  bool expired_offline = false;  // accepted past its expiry: offline, from a local medium
};

/// Where a candidate generation was read from.
enum class Medium {
  kNetwork,  // a store reached over the network (http, https): whoever controls the
             // network could replay an old signed generation, so expiry holds
  kLocal,    // a store folder on this machine (file://: a DVD, a copied folder)
};

/// May an agent for `fec` apply `candidate`? Refuses another FEC's generation, a number
/// below the floor, and one expired at max(now, floor.created), unless it was signed
/// `offline` and read from a local medium (then `expired_offline`: the policy in
/// docs/security.md, "Expiry and offline stores"). An equal number is the caller's case
/// (the same generation again, or a forged twin).
Result<Acceptance> CheckAcceptable(const Generation& candidate, std::string_view fec,
                                   const AcceptedFloor& floor, int64_t now,
                                   Medium medium = Medium::kNetwork);

/// What a FEC says about the expiry of the generation it runs, at `now`: "" while it is
/// valid; "running expired offline generation N (expired at T)" for an offline one;
/// "running generation N, expired at T" otherwise. Services are never stopped for it.
std::string ExpiryNote(const Generation& active, int64_t now);

}  // namespace wharf
