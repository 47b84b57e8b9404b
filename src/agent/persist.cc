#include "agent/persist.h"

#include <unistd.h>

#include <algorithm>

#include "agent/abort_point.h"
#include "archive/snapshot.h"
#include "base/file.h"
#include "base/strings.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

constexpr uint64_t kMaxSnapshotBytes = 64ull << 30;

// latest.json as the server or the store folder gave it: nothing when there is none yet.
Result<std::optional<SnapshotRecord>> LatestFrom(const Result<std::string>& json) {
  if (!json) {
    if (json.error().code == ErrorCode::kNotFound) return std::optional<SnapshotRecord>();
    return std::unexpected(json.error());
  }
  auto record = ParseSnapshotRecord(*json);
  if (!record) return std::unexpected(record.error());
  return std::optional<SnapshotRecord>(std::move(*record));
}

class ServerChannel : public DataChannel {
 public:
  ServerChannel(std::string fec, const std::string& server, const std::string& token)
      : fec_(std::move(fec)), client_(server, token, {10, 0}) {}

  Result<SnapshotRecord> Send(const SnapshotRecord& claimed, const std::string& archive) override {
    std::string paths;
    for (const auto& p : claimed.paths) paths += (paths.empty() ? "" : ",") + p;
    std::string query = "?id=" + claimed.id + "&sha256=" + claimed.sha256 + "&size=" + std::to_string(claimed.size) +
                        "&generation=" + std::to_string(claimed.generation) + "&paths=" + paths;
    auto answer = client_.PostFile("/api/v1/fecs/" + fec_ + "/data" + query, archive, "application/zstd");
    if (!answer) return std::unexpected(answer.error());
    return ParseSnapshotRecord(*answer);
  }

  Result<std::optional<SnapshotRecord>> Latest() override {
    return LatestFrom(client_.Call("GET", "/api/v1/fecs/" + fec_ + "/data/latest"));
  }

  Status Fetch(const SnapshotRecord& record, const std::string& dest) override {
    return client_.Download("/api/v1/fecs/" + fec_ + "/data/" + record.id, dest, record.size);
  }

  std::string Describe() const override { return client_.server(); }

 private:
  std::string fec_;
  ApiClient client_;
};

// A store folder this FEC can write: the same checks and the same atomic steps as the server.
class FolderChannel : public DataChannel {
 public:
  FolderChannel(std::string fec, Store store, int keep) : fec_(std::move(fec)), store_(std::move(store)), keep_(keep) {}

  Result<SnapshotRecord> Send(const SnapshotRecord& claimed, const std::string& archive) override {
    return AddSnapshot(store_, claimed, archive, keep_);
  }

  Result<std::optional<SnapshotRecord>> Latest() override {
    return LatestFrom(ReadFile(JoinPath(store_.root(), LatestSnapshotPath(fec_)), 64 << 10));
  }

  Status Fetch(const SnapshotRecord& record, const std::string& dest) override {
    return CopyFile(JoinPath(store_.root(), SnapshotArchivePath(fec_, record.id)), dest);
  }

  std::string Describe() const override { return "file://" + store_.root(); }

 private:
  std::string fec_;
  Store store_;
  int keep_;
};

std::string SnapshotDir(const Layout& layout) { return JoinPath(layout.base(), "snapshots"); }

}  // namespace

std::unique_ptr<DataChannel> OpenDataChannel(const std::string& fec, const std::string& server,
                                             const std::string& token, const std::vector<std::string>& stores,
                                             int keep, std::string& why) {
  if (!server.empty()) {
    if (token.empty()) {
      why = "a server is set but no token (--token, token_file in agent.toml)";
      return nullptr;
    }
    return std::make_unique<ServerChannel>(fec, server, token);
  }
  for (const auto& url : stores) {
    if (!url.starts_with("file://")) continue;
    auto store = Store::Open(url.substr(7), false);
    if (!store) {
      why = store.error().message;
      return nullptr;
    }
    return std::make_unique<FolderChannel>(fec, std::move(*store), keep);
  }
  why = "persistent data goes to the server's API (set server and token_file in agent.toml) or to a "
        "file:// store; this agent has neither";
  return nullptr;
}

std::vector<std::string> EmptyPersistentPaths(const Layout& layout, const Generation& active) {
  std::vector<std::string> empty;
  for (const auto& path : active.persist.paths)
    if (PersistentPathEmpty(layout.root(), path)) empty.push_back(path);
  return empty;
}

Result<SnapshotRecord> TakeSnapshot(const Layout& layout, const Generation& active, DataChannel& channel,
                                    int64_t now) {
  if (active.persist.paths.empty())
    return Fail(ErrorCode::kNotFound, active.fec + ": generation " + std::to_string(active.number) +
                                          " declares no persistent data; `wharf persist " + active.fec +
                                          " PATH...` does");
  std::string dir = SnapshotDir(layout);
  SnapshotRecord claimed;
  claimed.id = NewSnapshotId();
  claimed.fec = active.fec;
  claimed.created = now;
  claimed.generation = active.number;
  claimed.paths = active.persist.paths;
  std::string archive = JoinPath(dir, claimed.id + ".tar.zst");
  {
    auto lock = FileLock::Acquire(layout.lock());
    if (!lock) return std::unexpected(lock.error());
    // Only one snapshot is ever in the making: what is here was cut short.
    WHARF_TRY(RemoveTree(dir));
    WHARF_TRY(MakeDirs(dir));
    auto stats = PackSnapshot(layout.root(), claimed.paths, archive);
    if (!stats) return Prefix(active.fec + ": snapshot", stats.error());
    AbortPoint("snapshot-packed");
  }
  auto digest = Sha256File(archive);
  if (!digest) return std::unexpected(digest.error());
  claimed.size = digest->size;
  claimed.sha256 = digest->sha256;
  auto stored = channel.Send(claimed, archive);
  (void)RemoveTree(archive);
  if (!stored) return Prefix(active.fec + ": snapshot " + claimed.id + " not stored at " + channel.Describe(), stored.error());
  AbortPoint("snapshot-sent");
  return stored;
}

Result<RestoreReport> RestorePersistentData(const Layout& layout, const Generation& active, DataChannel& channel) {
  RestoreReport report;
  std::vector<std::string> empty = EmptyPersistentPaths(layout, active);
  if (empty.empty()) return report;
  auto latest = channel.Latest();
  if (!latest) return Prefix(active.fec + ": persistent data: " + channel.Describe(), latest.error());
  if (!*latest) {
    report.none_stored = true;
    return report;
  }
  const SnapshotRecord& record = **latest;
  if (record.fec != active.fec)
    return Fail(ErrorCode::kRejected, active.fec + ": the latest snapshot is " + record.fec + "'s; refusing it");
  std::string dir = SnapshotDir(layout);
  std::string archive = JoinPath(dir, "restore-" + record.id + ".tar.zst");
  {
    auto lock = FileLock::Acquire(layout.lock());
    if (!lock) return std::unexpected(lock.error());
    WHARF_TRY(RemoveTree(dir));
    WHARF_TRY(MakeDirs(dir));
    auto removed = [&] { (void)RemoveTree(archive); };
    if (record.size > kMaxSnapshotBytes)
      return Fail(ErrorCode::kCorrupt, "snapshot " + record.id + " is over 64 GiB; pick another with "
                                       "`wharf data restore " + active.fec + " --snapshot ID`");
    if (auto fetched = channel.Fetch(record, archive); !fetched) {
      removed();
      return Prefix(active.fec + ": snapshot " + record.id, fetched.error());
    }
    auto digest = Sha256File(archive);
    if (!digest || digest->size != record.size || digest->sha256 != record.sha256) {
      removed();
      return Fail(ErrorCode::kCorrupt, active.fec + ": snapshot " + record.id +
                                           " does not match its record (size or sha256); not restored: pick "
                                           "another with `wharf data restore " + active.fec + " --snapshot ID`");
    }
    for (const auto& path : empty) {
      if (std::find(record.paths.begin(), record.paths.end(), path) == record.paths.end()) continue;
      auto restored = RestoreSnapshotPath(archive, layout.root(), path, record.paths);
      if (!restored) {
        removed();
        return Prefix(active.fec + ": restoring " + path + " from snapshot " + record.id, restored.error());
      }
      report.restored.push_back(path);
      AbortPoint("data-restored");
    }
    removed();
  }
  report.snapshot = record.id;
  return report;
}

}  // namespace wharf
