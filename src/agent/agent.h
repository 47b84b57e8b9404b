// The FEC side: fetch the signed generation, check it, fetch and unpack what is missing,
// switch atomically, keep the last few generations. Any failure leaves the running
// generation as it was; a kill at any point leaves the old or the new one, whole.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/install.h"
#include "agent/layout.h"
#include "agent/state.h"
#include "base/clock.h"
#include "base/error.h"
#include "crypto/sign.h"
#include "fetch/fetch.h"
#include "generation/generation.h"

namespace wharf {

struct AgentConfig {
  std::string root = "/";
  std::vector<std::string> stores;  // base URLs, tried in order
  std::string fec;
  std::vector<PublicKey> trusted;
  int keep = 3;           // generations whose packages stay on disk
  bool dry_run = false;   // sync: check and plan, change nothing
  TransferDeadline deadline;  // per transfer: base + size / floor rate (fetch.h); given to the fetcher
};

/// A sync's progress, written by the thread running Agent::Sync and readable from any
/// other at any time (a heartbeat thread): plain atomics, no lock.
struct SyncProgress {
  std::atomic<bool> running{false};  // a Sync is under way
  std::atomic<uint64_t> done{0};     // bytes of `total` fetched (or found not needed) so far
  std::atomic<uint64_t> total{0};    // bytes planned: archive + package.json of each package to
                                     // install; 0 until the generation is verified
};

/// "syncing: N of M bytes" while a sync runs (N at most M), "" when idle: a heartbeat's activity.
std::string SyncActivity(const SyncProgress& progress);

enum class SyncOutcome { kApplied, kUpToDate, kOffline, kPlanned };

struct PackagePlan {
  PackageRef ref;
  bool present = false;  // already unpacked: nothing to fetch
};

struct SyncReport {
  SyncOutcome outcome = SyncOutcome::kUpToDate;
  std::optional<uint64_t> previous;  // the generation running before
  uint64_t generation = 0;           // the generation running after
  std::string store;                 // the URL that answered
  std::vector<PackagePlan> plan;
  bool clock_behind = false;
  uint64_t bytes_fetched = 0;
  size_t files_reused = 0;   // taken from packages already on the FEC instead of fetched
  size_t files_patched = 0;  // rebuilt from a delta against a file already on the FEC
  uint64_t requests = 0;
  /// kOffline: "store unreachable (WHY); running generation N, valid until T" (or the
  /// ExpiryNote of the active generation once it expired); services keep running.
  std::string offline_reason;
  /// The generation running after the sync is past its expiry: its ExpiryNote
  /// ("running expired offline generation N (expired at T)"); "" otherwise.
  std::string expiry;
  std::vector<std::string> repaired;  // name@version of packages whose files had changed
  /// Under a local rollback (the active generation older than the floor) that the store's
  /// generation does not supersede: "local rollback to R (from F)"; "" otherwise.
  std::string local_rollback;
};

/// What `wharf-agent rollback` did (or, with dry_run, would do).
struct RollbackReport {
  uint64_t from = 0;                   // the generation running before
  uint64_t to = 0;                     // the generation running after
  bool changed = false;                // false: `to` was already active
  std::vector<uint64_t> kept;          // the kept generations
  std::vector<PackageRef> packages;    // of `to`
};

/// Why a sync found no store, and what the FEC runs meanwhile (`active`, or none).
std::string OfflineReason(const std::string& why, const Generation* active, int64_t now);

/// "local rollback to R (from F)" when the active generation is older than the newest one
/// applied (a `wharf-agent rollback` that no newer signed generation has superseded yet);
/// "" otherwise.
std::string LocalRollbackNote(uint64_t active, const AcceptedFloor& floor);

struct AgentStatus {
  std::optional<Generation> active;
  AcceptedFloor floor;
  std::vector<uint64_t> kept;          // generations whose profiles are on disk
  std::vector<std::string> half_done;  // leftovers of an interrupted sync
};

/// Removes the profiles beyond the newest `keep` generations (`keep` 0: none of them) except
/// the current one and the generation a current dev profile is built on, every dev profile
/// that is not current, and the packages no remaining profile names.
/// REQUIRES: the agent's lock (layout.lock()) held.
Status CollectGarbage(const Layout& layout, int keep);
/// Removes what an interrupted sync, install-dev or drop-dev left: hidden names, tmp/
/// (less the temporaries of processes still running: a dev upload is received unlocked),
/// dev profiles that are not current and dev versions no profile links.
/// REQUIRES: the agent's lock held.
Status RecoverLeftovers(const Layout& layout);

class Agent {
 public:
  /// `clock` and `fetcher` must outlive the agent.
  Agent(AgentConfig config, const Clock& clock, Fetcher& fetcher);

  /// One pass of the boot sequence. kOffline when no store answered (the active
  /// generation stays); an Error when a generation or archive was refused or the disk failed.
  Result<SyncReport> Sync();
  Result<AgentStatus> ReadStatus() const;
  /// Switches to kept generation `to` (default: the newest kept one older than the active
  /// one) without any store: its signature is checked against the trusted keys, not its
  /// expiry nor the floor, and the floor stays, so that only a generation newer than the
  /// floor supersedes the rollback.
  Result<RollbackReport> Rollback(std::optional<uint64_t> to);
  /// The running sync's progress; safe to read from another thread while Sync runs.
  const SyncProgress& progress() const { return progress_; }

 private:
  /// The start of every change to the FEC's state: the tmp folder, the agent's lock, then
  /// what a killed run left half-done cleaned up (not on a dry run).
  Result<FileLock> LockAndRecover(const Layout& layout);
  struct Fetched;
  Result<std::optional<Fetched>> FetchGeneration(const std::optional<ActiveGeneration>& active,
                                                 const AcceptedFloor& floor, SyncReport& report);
  Status Apply(const Fetched& fetched, const std::optional<Generation>& previous,
               const AcceptedFloor& floor, SyncReport& report);
  Status InstallPackage(const PackageRef& ref, Mirrors& mirrors, SyncReport& report);
  Status WriteProfile(const Fetched& fetched);
  /// The switch shared by a sync and a local rollback: links the prefixes, points `current`
  /// at `next`'s profile, raises the floor to `floor` when given, removes what `next` no
  /// longer needs.
  Status SwitchTo(const Generation& next, const std::optional<Generation>& previous,
                  const std::optional<AcceptedFloor>& floor);
  /// Fails unless `next` descends from the floor generation (fetching the generations
  /// between them from `store`, each pinned by its child's parent hash).
  Status CheckChain(const std::string& store, const Generation& next, const AcceptedFloor& floor);
  /// Makes the prefix links of `next`. With `deferred`, a link that must wait for a link
  /// of `previous` to go is put there instead of made.
  Status LinkPrefixes(const Generation& next, const std::optional<Generation>& previous,
                      std::vector<PackageRef>* deferred);
  Status UnlinkDroppedPrefixes(const Generation& next, const std::optional<Generation>& previous);

  AgentConfig config_;
  const Clock& clock_;
  Fetcher& fetcher_;
  SyncProgress progress_;
};

}  // namespace wharf
