// The server's records in SQLite (WAL): tokens (hashed), heartbeats and what each FEC runs,
// activations (when a FEC started running a generation), an index of the store's
// generations, and the audit log. The store folder stays the truth for what is served;
// the generation index is derived from it and can be rebuilt.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"

namespace SQLite {
class Database;
}

namespace wharf {

// What each may do: docs/api.md, "Tokens and roles". A maintainer is an operator who may
// also change what runs as root on FECs (service settings, boot scripts, persistent folders).
enum class Role { kAdmin, kPublisher, kOperator, kAgent, kMaintainer };
const char* RoleName(Role role);
std::optional<Role> ParseRole(std::string_view text);

struct TokenInfo {
  int64_t id = 0;
  std::string name;
  Role role = Role::kAgent;
  std::string fec;  // agent tokens: the one FEC
  int64_t created = 0;
  std::optional<int64_t> revoked;
};

// A dev version a FEC reported running (wharf-agent install-dev, `wharf dev-deploy`).
struct DevVersion {
  std::string name;
  std::string sha256;                   // of its archive; "" from an agent that did not say
  std::optional<std::string> replaces;  // the generation's version it stands in for
};

// A dev version's run on a FEC, from the first heartbeat that reported it to the first that
// did not (as activations: what the server heard, to the heartbeat interval).
struct DevRun {
  std::string fec;
  DevVersion dev;
  std::optional<uint64_t> generation;  // the generation it ran on
  int64_t since = 0;
  std::optional<int64_t> until;        // none: still running at the last heartbeat
};

struct Heartbeat {
  std::string fec;
  int64_t time = 0;
  std::optional<uint64_t> running;  // generation the FEC runs
  std::string services_json = "[]";  // [{"name": .., "state": "up"|"down", ...}]
  std::string last_error;
  std::string remote;
  std::string agent_version;
  std::string dev_json = "[]";  // dev versions in place of the generation's: [{"name", "replaces", "sha256"}]
  std::vector<DevVersion> dev;  // the same, for the record of dev runs
  std::string activity;  // what the agent is doing: "syncing: N of M bytes", "" when idle
};

struct FecRecord {
  std::string fec;
  std::optional<int64_t> last_heartbeat;
  std::optional<uint64_t> running;
  std::string services_json = "[]";
  std::string last_error;
  std::string remote;
  std::string agent_version;
  std::string dev_json = "[]";
  std::string activity;  // as of the last heartbeat
};

struct Activation {
  std::string fec;
  uint64_t generation = 0;
  int64_t time = 0;  // first heartbeat that reported it running
};

struct GenerationRow {
  std::string fec;
  uint64_t number = 0;
  int64_t created = 0;
  int64_t expires = 0;
  std::string packages;  // "a@1 b@2"
};

struct AuditEntry {
  int64_t id = 0;
  int64_t time = 0;
  std::string actor;  // token name
  std::string role;
  std::string remote;
  std::string action;  // publish, assign, token-create, ...
  std::string target;  // FEC or package@version
  std::string detail;
  int status = 0;  // HTTP status of the answer
  int64_t count = 1;  // refusals: how many alike in this entry's minute (see Records::Audit)
};

class Records {
 public:
  /// Opens (creating) the database at `path` and runs pending migrations.
  static Result<std::unique_ptr<Records>> Open(const std::string& path);
  ~Records();

  static constexpr int kSchemaVersion = 5;
  /// Refused requests: new audit rows per minute; past it one row counts the rest.
  static constexpr int kRefusalRowsPerMinute = 100;
  int schema_version();

  /// A new token; returns the secret, which is shown once and stored only hashed.
  Result<std::string> CreateToken(const std::string& name, Role role, const std::string& fec,
                                  int64_t now);
  Result<std::vector<TokenInfo>> Tokens();
  Status RevokeToken(const std::string& name, int64_t now);
  /// The live token whose secret this is.
  std::optional<TokenInfo> Authenticate(std::string_view secret);

  /// Records a heartbeat; a new running generation starts an activation, a dev version not
  /// reported before starts a dev run, and one no longer reported ends its run.
  Status RecordHeartbeat(const Heartbeat& heartbeat);
  Result<std::vector<FecRecord>> FecRecords();
  Result<std::optional<FecRecord>> Fec(const std::string& fec);
  /// Activations of a FEC, newest first.
  Result<std::vector<Activation>> Activations(const std::string& fec, int limit);
  /// The activation in force at `time` (the last one not after it).
  Result<std::optional<Activation>> ActivationAt(const std::string& fec, int64_t time);

  /// The dev versions running on the FEC at `time`.
  Result<std::vector<DevRun>> DevAt(const std::string& fec, int64_t time);
  /// A FEC's dev runs, newest first.
  Result<std::vector<DevRun>> DevRuns(const std::string& fec, int limit);

  Status RecordGeneration(const GenerationRow& row);
  /// Highest generation number indexed for the FEC (0: none).
  uint64_t LastGeneration(const std::string& fec);
  Result<std::vector<GenerationRow>> Generations(const std::string& fec);
  /// Drops the derived generation index (before it is rebuilt from the store).
  Status ClearGenerations();

  /// Writes one row; a refusal (status >= 400) is folded into the row of the same actor,
  /// role, address, action, target, detail and status in the same minute (its count), and
  /// at most kRefusalRowsPerMinute such rows start in a minute; the rest go to one row
  /// (action "refused-overflow"). Counts are written at least once a second of `time`,
  /// before AuditLog reads, and on close.
  Status Audit(const AuditEntry& entry);
  /// Newest first; `target` empty: all.
  Result<std::vector<AuditEntry>> AuditLog(int limit, const std::string& target);

  struct Pruned {
    int64_t audit = 0;
    int64_t activations = 0;
    int64_t dev_runs = 0;
  };
  /// Retention: drops audit rows older than `audit_before`, and activations and ended dev runs
  /// older than `activations_before` (each FEC keeps its newest activation); a cut-off of 0
  /// keeps everything.
  Result<Pruned> Prune(int64_t audit_before, int64_t activations_before);

 private:
  Records() = default;
  // REQUIRES: mutex_ held (and, for RecordDevRuns, a transaction open).
  void RecordDevRuns(const Heartbeat& heartbeat);
  void InsertAudit(const AuditEntry& entry, int64_t* id);
  void FlushRefusals();

  struct PendingRefusal {
    int64_t id = 0;
    int64_t count = 0;
    int64_t written = 0;  // the count the row has
  };
  std::mutex mutex_;
  std::unique_ptr<SQLite::Database> db_;
  int64_t refusal_minute_ = -1;
  int64_t refusals_flushed_ = 0;  // time of the last flush
  std::map<std::string, PendingRefusal> refusals_;  // this minute's, by what they share
};

/// "wharf_" + 64 hex digits from the system's random source.
std::string NewTokenSecret();

}  // namespace wharf
