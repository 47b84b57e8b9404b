// The server's records in SQLite (WAL): tokens (hashed), heartbeats and what each FEC runs,
// activations (when a FEC started running a generation), an index of the store's
// generations, and the audit log. The store folder stays the truth for what is served;
// the generation index is derived from it and can be rebuilt.
#pragma once

#include <cstdint>
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

enum class Role { kAdmin, kPublisher, kOperator, kAgent };
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

struct Heartbeat {
  std::string fec;
  int64_t time = 0;
  std::optional<uint64_t> running;  // generation the FEC runs
  std::string services_json = "[]";  // [{"name": .., "state": "up"|"down", ...}]
  std::string last_error;
  std::string remote;
  std::string agent_version;
  std::string dev_json = "[]";  // dev versions in place of the generation's: [{"name", "replaces"}]
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
};

class Records {
 public:
  /// Opens (creating) the database at `path` and runs pending migrations.
  static Result<std::unique_ptr<Records>> Open(const std::string& path);
  ~Records();

  static constexpr int kSchemaVersion = 2;
  int schema_version();

  /// A new token; returns the secret, which is shown once and stored only hashed.
  Result<std::string> CreateToken(const std::string& name, Role role, const std::string& fec,
                                  int64_t now);
  Result<std::vector<TokenInfo>> Tokens();
  Status RevokeToken(const std::string& name, int64_t now);
  /// The live token whose secret this is.
  std::optional<TokenInfo> Authenticate(std::string_view secret);

  /// Records a heartbeat; a new running generation starts an activation.
  Status RecordHeartbeat(const Heartbeat& heartbeat);
  Result<std::vector<FecRecord>> FecRecords();
  Result<std::optional<FecRecord>> Fec(const std::string& fec);
  /// Activations of a FEC, newest first.
  Result<std::vector<Activation>> Activations(const std::string& fec, int limit);
  /// The activation in force at `time` (the last one not after it).
  Result<std::optional<Activation>> ActivationAt(const std::string& fec, int64_t time);

  Status RecordGeneration(const GenerationRow& row);
  /// Highest generation number indexed for the FEC (0: none).
  uint64_t LastGeneration(const std::string& fec);
  Result<std::vector<GenerationRow>> Generations(const std::string& fec);
  /// Drops the derived generation index (before it is rebuilt from the store).
  Status ClearGenerations();

  Status Audit(const AuditEntry& entry);
  /// Newest first; `target` empty: all.
  Result<std::vector<AuditEntry>> AuditLog(int limit, const std::string& target);

 private:
  Records() = default;
  std::mutex mutex_;
  std::unique_ptr<SQLite::Database> db_;
};

/// "wharf_" + 64 hex digits from the system's random source.
std::string NewTokenSecret();

}  // namespace wharf
