#include "server/records.h"

#include <algorithm>

#include <SQLiteCpp/SQLiteCpp.h>

#include "base/strings.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

// Each entry moves the schema one version up; they run in order, in one transaction each.
constexpr const char* kMigrations[] = {
    // 1
    R"(CREATE TABLE tokens(
         id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
         fec TEXT NOT NULL DEFAULT '', hash TEXT NOT NULL UNIQUE, created INTEGER NOT NULL,
         revoked INTEGER);
       CREATE TABLE fecs(
         fec TEXT PRIMARY KEY, last_heartbeat INTEGER, running INTEGER,
         services TEXT NOT NULL DEFAULT '[]', last_error TEXT NOT NULL DEFAULT '',
         remote TEXT NOT NULL DEFAULT '', agent_version TEXT NOT NULL DEFAULT '');
       CREATE TABLE activations(
         id INTEGER PRIMARY KEY, fec TEXT NOT NULL, generation INTEGER NOT NULL,
         time INTEGER NOT NULL);
       CREATE INDEX activations_by_fec ON activations(fec, time);
       CREATE TABLE generations(
         fec TEXT NOT NULL, number INTEGER NOT NULL, created INTEGER NOT NULL,
         expires INTEGER NOT NULL, packages TEXT NOT NULL, PRIMARY KEY(fec, number));
       CREATE TABLE audit(
         id INTEGER PRIMARY KEY, time INTEGER NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL,
         remote TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
         detail TEXT NOT NULL, status INTEGER NOT NULL);
       CREATE INDEX audit_by_target ON audit(target, id);)",
    // 2: the dev versions a FEC runs in place of its generation's (wharf-agent install-dev)
    "ALTER TABLE fecs ADD COLUMN dev TEXT NOT NULL DEFAULT '[]';",
    // 3: refusals aggregated per minute (count); retention by time
    R"(ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
       CREATE INDEX audit_by_time ON audit(time);
       CREATE INDEX activations_by_time ON activations(time);)",
    // 4: what the agent was doing at its last heartbeat ("syncing: N of M bytes")
    "ALTER TABLE fecs ADD COLUMN activity TEXT NOT NULL DEFAULT '';",
    // 5: dev versions' runs, for "what ran at T" (history --at)
    R"(CREATE TABLE dev_runs(
         id INTEGER PRIMARY KEY, fec TEXT NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL,
         replaces TEXT, generation INTEGER, since INTEGER NOT NULL, until INTEGER);
       CREATE INDEX dev_runs_by_fec ON dev_runs(fec, since);)",
};

Error DbError(const std::exception& e) {
  return {ErrorCode::kIo, std::string("records database: ") + e.what()};
}

template <typename F>
auto Guarded(std::mutex& mutex, F&& f) -> decltype(f()) {
  std::lock_guard lock(mutex);
  try {
    return f();
  } catch (const std::exception& e) {
    return std::unexpected(DbError(e));
  }
}

std::string TokenHash(std::string_view secret) { return Sha256Hex(secret); }

std::optional<int64_t> OptionalInt(const SQLite::Column& column) {
  if (column.isNull()) return std::nullopt;
  return column.getInt64();
}

FecRecord ReadFec(SQLite::Statement& q) {
  FecRecord r;
  r.fec = q.getColumn(0).getString();
  r.last_heartbeat = OptionalInt(q.getColumn(1));
  if (auto running = OptionalInt(q.getColumn(2))) r.running = static_cast<uint64_t>(*running);
  r.services_json = q.getColumn(3).getString();
  r.last_error = q.getColumn(4).getString();
  r.remote = q.getColumn(5).getString();
  r.agent_version = q.getColumn(6).getString();
  r.dev_json = q.getColumn(7).getString();
  r.activity = q.getColumn(8).getString();
  return r;
}

DevRun ReadDevRun(SQLite::Statement& q, const std::string& fec) {
  DevRun r;
  r.fec = fec;
  r.dev.name = q.getColumn(0).getString();
  r.dev.sha256 = q.getColumn(1).getString();
  if (!q.getColumn(2).isNull()) r.dev.replaces = q.getColumn(2).getString();
  if (auto g = OptionalInt(q.getColumn(3))) r.generation = static_cast<uint64_t>(*g);
  r.since = q.getColumn(4).getInt64();
  r.until = OptionalInt(q.getColumn(5));
  return r;
}

constexpr const char* kDevRunColumns = "SELECT name, sha256, replaces, generation, since, until FROM dev_runs";

constexpr const char* kFecColumns =
    "SELECT fec, last_heartbeat, running, services, last_error, remote, agent_version, dev, activity FROM fecs";

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kAdmin: return "admin";
    case Role::kPublisher: return "publisher";
    case Role::kOperator: return "operator";
    case Role::kAgent: return "agent";
    case Role::kMaintainer: return "maintainer";
  }
  return "?";
}

std::optional<Role> ParseRole(std::string_view text) {
  for (Role r : {Role::kAdmin, Role::kPublisher, Role::kOperator, Role::kAgent, Role::kMaintainer})
    if (text == RoleName(r)) return r;
  return std::nullopt;
}

std::string NewTokenSecret() {
  return "wharf_" + RandomHex(32);
}

Records::~Records() {
  std::lock_guard lock(mutex_);
  try {
    if (db_) FlushRefusals();
  } catch (const std::exception&) {
  }
}

Result<std::unique_ptr<Records>> Records::Open(const std::string& path) {
  std::unique_ptr<Records> records(new Records);
  try {
    records->db_ = std::make_unique<SQLite::Database>(
        path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_FULLMUTEX);
    SQLite::Database& db = *records->db_;
    db.setBusyTimeout(10000);
    db.exec("PRAGMA journal_mode=WAL");
    db.exec("PRAGMA synchronous=NORMAL");
    db.exec("PRAGMA foreign_keys=ON");
    int version = db.execAndGet("PRAGMA user_version").getInt();
    if (version > kSchemaVersion)
      return Fail(ErrorCode::kUnsupported,
                  path + " has schema version " + std::to_string(version) + ", newer than this wharf (" +
                      std::to_string(kSchemaVersion) + "); run the newer wharf serve");
    static_assert(std::size(kMigrations) == kSchemaVersion, "one migration per schema version");
    for (int v = version; v < kSchemaVersion; ++v) {
      SQLite::Transaction transaction(db);
      db.exec(kMigrations[v]);
      db.exec("PRAGMA user_version = " + std::to_string(v + 1));
      transaction.commit();
    }
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kIo, path + ": cannot open the records database (" + e.what() +
                                    "); if it is damaged, move it aside and run `wharf serve --rebuild-db`");
  }
  return records;
}

int Records::schema_version() {
  std::lock_guard lock(mutex_);
  return db_->execAndGet("PRAGMA user_version").getInt();
}

Result<std::string> Records::CreateToken(const std::string& name, Role role, const std::string& fec,
                                         int64_t now) {
  return Guarded(mutex_, [&]() -> Result<std::string> {
    SQLite::Statement exists(*db_, "SELECT 1 FROM tokens WHERE name = ?");
    exists.bind(1, name);
    if (exists.executeStep())
      return Fail(ErrorCode::kAlreadyExists,
                  "a token named " + name + " exists; revoke it first or choose another name");
    std::string secret = NewTokenSecret();
    SQLite::Statement q(*db_, "INSERT INTO tokens(name, role, fec, hash, created) VALUES(?,?,?,?,?)");
    q.bind(1, name);
    q.bind(2, RoleName(role));
    q.bind(3, fec);
    q.bind(4, TokenHash(secret));
    q.bind(5, static_cast<int64_t>(now));
    q.exec();
    return secret;
  });
}

Result<std::vector<TokenInfo>> Records::Tokens() {
  return Guarded(mutex_, [&]() -> Result<std::vector<TokenInfo>> {
    std::vector<TokenInfo> out;
    SQLite::Statement q(*db_, "SELECT id, name, role, fec, created, revoked FROM tokens ORDER BY name");
    while (q.executeStep()) {
      TokenInfo t;
      t.id = q.getColumn(0).getInt64();
      t.name = q.getColumn(1).getString();
      t.role = ParseRole(q.getColumn(2).getString()).value_or(Role::kAgent);
      t.fec = q.getColumn(3).getString();
      t.created = q.getColumn(4).getInt64();
      t.revoked = OptionalInt(q.getColumn(5));
      out.push_back(std::move(t));
    }
    return out;
  });
}

Status Records::RevokeToken(const std::string& name, int64_t now) {
  return Guarded(mutex_, [&]() -> Status {
    SQLite::Statement q(*db_, "UPDATE tokens SET revoked = ? WHERE name = ? AND revoked IS NULL");
    q.bind(1, static_cast<int64_t>(now));
    q.bind(2, name);
    if (q.exec() == 0)
      return Fail(ErrorCode::kNotFound, "no live token named " + name + "; `wharf token list` shows them");
    return {};
  });
}

std::optional<TokenInfo> Records::Authenticate(std::string_view secret) {
  if (!secret.starts_with("wharf_") || secret.size() != 70) return std::nullopt;
  std::lock_guard lock(mutex_);
  try {
    SQLite::Statement q(*db_, "SELECT id, name, role, fec, created FROM tokens "
                              "WHERE hash = ? AND revoked IS NULL");
    q.bind(1, TokenHash(secret));
    if (!q.executeStep()) return std::nullopt;
    TokenInfo t;
    t.id = q.getColumn(0).getInt64();
    t.name = q.getColumn(1).getString();
    auto role = ParseRole(q.getColumn(2).getString());
    if (!role) return std::nullopt;
    t.role = *role;
    t.fec = q.getColumn(3).getString();
    t.created = q.getColumn(4).getInt64();
    return t;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

Status Records::RecordHeartbeat(const Heartbeat& h) {
  return Guarded(mutex_, [&]() -> Status {
    SQLite::Transaction transaction(*db_);
    std::optional<int64_t> previous;
    {
      SQLite::Statement q(*db_, "SELECT running FROM fecs WHERE fec = ?");
      q.bind(1, h.fec);
      if (q.executeStep()) previous = OptionalInt(q.getColumn(0));
    }
    SQLite::Statement up(*db_, R"(INSERT INTO fecs(fec, last_heartbeat, running, services, last_error,
                                      remote, agent_version, dev, activity) VALUES(?,?,?,?,?,?,?,?,?)
        ON CONFLICT(fec) DO UPDATE SET last_heartbeat = excluded.last_heartbeat,
          running = excluded.running, services = excluded.services,
          last_error = excluded.last_error, remote = excluded.remote,
          agent_version = excluded.agent_version, dev = excluded.dev, activity = excluded.activity)");
    up.bind(1, h.fec);
    up.bind(2, static_cast<int64_t>(h.time));
    if (h.running) up.bind(3, static_cast<int64_t>(*h.running)); else up.bind(3);
    up.bind(4, h.services_json);
    up.bind(5, h.last_error);
    up.bind(6, h.remote);
    up.bind(7, h.agent_version);
    up.bind(8, h.dev_json);
    up.bind(9, h.activity);
    up.exec();
    if (h.running && (!previous || static_cast<uint64_t>(*previous) != *h.running)) {
      SQLite::Statement a(*db_, "INSERT INTO activations(fec, generation, time) VALUES(?,?,?)");
      a.bind(1, h.fec);
      a.bind(2, static_cast<int64_t>(*h.running));
      a.bind(3, static_cast<int64_t>(h.time));
      a.exec();
    }
    RecordDevRuns(h);
    transaction.commit();
    return {};
  });
}

void Records::RecordDevRuns(const Heartbeat& h) {
  auto same = [](const DevVersion& a, const DevVersion& b) {
    return a.name == b.name && a.sha256 == b.sha256 && a.replaces == b.replaces;
  };
  std::vector<DevVersion> open;
  {
    SQLite::Statement q(*db_, "SELECT id, name, sha256, replaces FROM dev_runs WHERE fec = ? AND until IS NULL");
    q.bind(1, h.fec);
    SQLite::Statement end(*db_, "UPDATE dev_runs SET until = ? WHERE id = ?");
    while (q.executeStep()) {
      DevVersion d{q.getColumn(1).getString(), q.getColumn(2).getString(), std::nullopt};
      if (!q.getColumn(3).isNull()) d.replaces = q.getColumn(3).getString();
      if (std::any_of(h.dev.begin(), h.dev.end(), [&](const DevVersion& x) { return same(x, d); })) {
        open.push_back(std::move(d));
        continue;
      }
      end.bind(1, static_cast<int64_t>(h.time));
      end.bind(2, q.getColumn(0).getInt64());
      end.exec();
      end.reset();
    }
  }
  SQLite::Statement add(*db_, "INSERT INTO dev_runs(fec, name, sha256, replaces, generation, since) VALUES(?,?,?,?,?,?)");
  for (const auto& d : h.dev) {
    if (std::any_of(open.begin(), open.end(), [&](const DevVersion& x) { return same(x, d); })) continue;
    add.bind(1, h.fec);
    add.bind(2, d.name);
    add.bind(3, d.sha256);
    if (d.replaces) add.bind(4, *d.replaces); else add.bind(4);
    if (h.running) add.bind(5, static_cast<int64_t>(*h.running)); else add.bind(5);
    add.bind(6, static_cast<int64_t>(h.time));
    add.exec();
    add.reset();
    open.push_back(d);
  }
}

Result<std::vector<DevRun>> Records::DevAt(const std::string& fec, int64_t time) {
  return Guarded(mutex_, [&]() -> Result<std::vector<DevRun>> {
    std::vector<DevRun> out;
    SQLite::Statement q(*db_, std::string(kDevRunColumns) +
                                  " WHERE fec = ? AND since <= ? AND (until IS NULL OR until > ?) ORDER BY name, id");
    q.bind(1, fec);
    q.bind(2, static_cast<int64_t>(time));
    q.bind(3, static_cast<int64_t>(time));
    while (q.executeStep()) out.push_back(ReadDevRun(q, fec));
    return out;
  });
}

Result<std::vector<DevRun>> Records::DevRuns(const std::string& fec, int limit) {
  return Guarded(mutex_, [&]() -> Result<std::vector<DevRun>> {
    std::vector<DevRun> out;
    SQLite::Statement q(*db_, std::string(kDevRunColumns) + " WHERE fec = ? ORDER BY since DESC, id DESC LIMIT ?");
    q.bind(1, fec);
    q.bind(2, limit);
    while (q.executeStep()) out.push_back(ReadDevRun(q, fec));
    return out;
  });
}

Result<std::vector<FecRecord>> Records::FecRecords() {
  return Guarded(mutex_, [&]() -> Result<std::vector<FecRecord>> {
    std::vector<FecRecord> out;
    SQLite::Statement q(*db_, std::string(kFecColumns) + " ORDER BY fec");
    while (q.executeStep()) out.push_back(ReadFec(q));
    return out;
  });
}

Result<std::optional<FecRecord>> Records::Fec(const std::string& fec) {
  return Guarded(mutex_, [&]() -> Result<std::optional<FecRecord>> {
    SQLite::Statement q(*db_, std::string(kFecColumns) + " WHERE fec = ?");
    q.bind(1, fec);
    if (!q.executeStep()) return std::optional<FecRecord>();
    return std::optional<FecRecord>(ReadFec(q));
  });
}

Result<std::vector<Activation>> Records::Activations(const std::string& fec, int limit) {
  return Guarded(mutex_, [&]() -> Result<std::vector<Activation>> {
    std::vector<Activation> out;
    SQLite::Statement q(*db_, "SELECT generation, time FROM activations WHERE fec = ? "
                              "ORDER BY time DESC, id DESC LIMIT ?");
    q.bind(1, fec);
    q.bind(2, limit);
    while (q.executeStep())
      out.push_back({fec, static_cast<uint64_t>(q.getColumn(0).getInt64()), q.getColumn(1).getInt64()});
    return out;
  });
}

Result<std::optional<Activation>> Records::ActivationAt(const std::string& fec, int64_t time) {
  return Guarded(mutex_, [&]() -> Result<std::optional<Activation>> {
    SQLite::Statement q(*db_, "SELECT generation, time FROM activations WHERE fec = ? AND time <= ? "
                              "ORDER BY time DESC, id DESC LIMIT 1");
    q.bind(1, fec);
    q.bind(2, static_cast<int64_t>(time));
    if (!q.executeStep()) return std::optional<Activation>();
    return std::optional<Activation>(
        Activation{fec, static_cast<uint64_t>(q.getColumn(0).getInt64()), q.getColumn(1).getInt64()});
  });
}

Status Records::RecordGeneration(const GenerationRow& row) {
  return Guarded(mutex_, [&]() -> Status {
    SQLite::Statement q(*db_, "INSERT OR REPLACE INTO generations(fec, number, created, expires, "
                              "packages) VALUES(?,?,?,?,?)");
    q.bind(1, row.fec);
    q.bind(2, static_cast<int64_t>(row.number));
    q.bind(3, static_cast<int64_t>(row.created));
    q.bind(4, static_cast<int64_t>(row.expires));
    q.bind(5, row.packages);
    q.exec();
    return {};
  });
}

uint64_t Records::LastGeneration(const std::string& fec) {
  std::lock_guard lock(mutex_);
  try {
    SQLite::Statement q(*db_, "SELECT MAX(number) FROM generations WHERE fec = ?");
    q.bind(1, fec);
    if (q.executeStep() && !q.getColumn(0).isNull()) return static_cast<uint64_t>(q.getColumn(0).getInt64());
  } catch (const std::exception&) {
  }
  return 0;
}

Result<std::vector<GenerationRow>> Records::Generations(const std::string& fec) {
  return Guarded(mutex_, [&]() -> Result<std::vector<GenerationRow>> {
    std::vector<GenerationRow> out;
    SQLite::Statement q(*db_, "SELECT number, created, expires, packages FROM generations "
                              "WHERE fec = ? ORDER BY number");
    q.bind(1, fec);
    while (q.executeStep())
      out.push_back({fec, static_cast<uint64_t>(q.getColumn(0).getInt64()), q.getColumn(1).getInt64(),
                     q.getColumn(2).getInt64(), q.getColumn(3).getString()});
    return out;
  });
}

Status Records::ClearGenerations() {
  return Guarded(mutex_, [&]() -> Status {
    db_->exec("DELETE FROM generations");
    return {};
  });
}

void Records::InsertAudit(const AuditEntry& e, int64_t* id) {
  SQLite::Statement q(*db_, "INSERT INTO audit(time, actor, role, remote, action, target, detail, "
                            "status, count) VALUES(?,?,?,?,?,?,?,?,?)");
  q.bind(1, static_cast<int64_t>(e.time));
  q.bind(2, e.actor);
  q.bind(3, e.role);
  q.bind(4, e.remote);
  q.bind(5, e.action);
  q.bind(6, e.target);
  q.bind(7, e.detail);
  q.bind(8, e.status);
  q.bind(9, static_cast<int64_t>(e.count));
  q.exec();
  if (id) *id = db_->getLastInsertRowid();
}

void Records::FlushRefusals() {
  bool any = false;
  for (const auto& [key, r] : refusals_) any = any || r.count != r.written;
  if (!any) return;
  SQLite::Transaction transaction(*db_);
  SQLite::Statement q(*db_, "UPDATE audit SET count = ? WHERE id = ?");
  for (auto& [key, r] : refusals_) {
    if (r.count == r.written) continue;
    q.bind(1, static_cast<int64_t>(r.count));
    q.bind(2, static_cast<int64_t>(r.id));
    q.exec();
    q.reset();
    r.written = r.count;
  }
  transaction.commit();
}

Status Records::Audit(const AuditEntry& e) {
  return Guarded(mutex_, [&]() -> Status {
    if (e.status < 400) {
      InsertAudit(e, nullptr);
      return {};
    }
    // A refusal changed nothing: one row per kind and minute, so that a client repeating
    // refused requests cannot grow the log faster than kRefusalRowsPerMinute rows a minute.
    int64_t minute = e.time / 60;
    if (minute != refusal_minute_) {
      FlushRefusals();
      refusals_.clear();
      refusal_minute_ = minute;
    }
    AuditEntry row = e;
    std::string key;
    for (const std::string* part : {&e.actor, &e.role, &e.remote, &e.action, &e.target, &e.detail})
      key += std::to_string(part->size()) + ":" + *part;
    key += std::to_string(e.status);
    if (!refusals_.contains(key) && refusals_.size() >= static_cast<size_t>(kRefusalRowsPerMinute)) {
      row = {0, e.time, "*", "*", "*", "refused-overflow", "", 
             "more than " + std::to_string(kRefusalRowsPerMinute) +
                 " kinds of refused requests this minute; counted here, not one by one", 0, 1};
      key = "overflow";
    }
    auto [it, added] = refusals_.try_emplace(key);
    if (added) {
      InsertAudit(row, &it->second.id);
      it->second.count = it->second.written = 1;
    } else {
      ++it->second.count;
    }
    if (e.time > refusals_flushed_) {
      FlushRefusals();
      refusals_flushed_ = e.time;
    }
    return {};
  });
}

Result<std::vector<AuditEntry>> Records::AuditLog(int limit, const std::string& target) {
  return Guarded(mutex_, [&]() -> Result<std::vector<AuditEntry>> {
    FlushRefusals();
    std::vector<AuditEntry> out;
    SQLite::Statement q(*db_, std::string("SELECT id, time, actor, role, remote, action, target, "
                                          "detail, status, count FROM audit") +
                                  (target.empty() ? "" : " WHERE target = ?") +
                                  " ORDER BY id DESC LIMIT ?");
    int at = 1;
    if (!target.empty()) q.bind(at++, target);
    q.bind(at, limit);
    while (q.executeStep()) {
      AuditEntry e;
      e.id = q.getColumn(0).getInt64();
      e.time = q.getColumn(1).getInt64();
      e.actor = q.getColumn(2).getString();
      e.role = q.getColumn(3).getString();
      e.remote = q.getColumn(4).getString();
      e.action = q.getColumn(5).getString();
      e.target = q.getColumn(6).getString();
      e.detail = q.getColumn(7).getString();
      e.status = q.getColumn(8).getInt();
      e.count = q.getColumn(9).getInt64();
      out.push_back(std::move(e));
    }
    return out;
  });
}

Result<Records::Pruned> Records::Prune(int64_t audit_before, int64_t activations_before) {
  return Guarded(mutex_, [&]() -> Result<Pruned> {
    Pruned pruned;
    if (audit_before > 0) {
      FlushRefusals();
      SQLite::Statement q(*db_, "DELETE FROM audit WHERE time < ?");
      q.bind(1, static_cast<int64_t>(audit_before));
      pruned.audit = q.exec();
    }
    if (activations_before > 0) {
      // The newest activation of each FEC stays: it says since when it runs what it runs.
      SQLite::Statement q(*db_, "DELETE FROM activations WHERE time < ? AND id NOT IN "
                                "(SELECT MAX(id) FROM activations GROUP BY fec)");
      q.bind(1, static_cast<int64_t>(activations_before));
      pruned.activations = q.exec();
      SQLite::Statement d(*db_, "DELETE FROM dev_runs WHERE until IS NOT NULL AND until < ?");
      d.bind(1, static_cast<int64_t>(activations_before));
      pruned.dev_runs = d.exec();
    }
    return pruned;
  });
}

}  // namespace wharf
