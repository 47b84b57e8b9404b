#include "store/data.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/json_integers.h"
#include "archive/names.h"
#include "archive/snapshot.h"
#include "base/file.h"
#include "base/strings.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

using nlohmann::ordered_json;
constexpr uint64_t kMaxRecordBytes = 64 << 10;

std::string DataDir(const Store& store, const std::string& fec) {
  return JoinPath(store.root(), "fecs/" + fec + "/data");
}

Result<SnapshotRecord> ReadRecord(const std::string& path) {
  auto json = ReadFile(path, kMaxRecordBytes);
  if (!json) return std::unexpected(json.error());
  auto record = ParseSnapshotRecord(*json);
  if (!record) return Prefix(path, record.error());
  return record;
}

// The stored archive still has the bytes its record names.
Status CheckStored(const Store& store, const SnapshotRecord& record) {
  std::string path = JoinPath(store.root(), SnapshotArchivePath(record.fec, record.id));
  auto digest = Sha256File(path);
  if (!digest) return std::unexpected(digest.error());
  if (digest->size != record.size || digest->sha256 != record.sha256)
    return Fail(ErrorCode::kCorrupt, path + " does not match its record (size or sha256); the store was "
                                            "altered: pick another snapshot");
  return {};
}

}  // namespace

std::string SnapshotArchivePath(const std::string& fec, const std::string& id) {
  return "fecs/" + fec + "/data/" + id + ".tar.zst";
}

std::string LatestSnapshotPath(const std::string& fec) { return "fecs/" + fec + "/data/latest.json"; }

std::string NewSnapshotId() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(now).count();
  std::string time = FormatTime(ms / 1000);  // 2026-11-25T21:05:00Z
  time.erase(std::remove_if(time.begin(), time.end(), [](char c) { return c == '-' || c == ':'; }), time.end());
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03d", static_cast<int>(ms % 1000));
  time.insert(time.size() - 1, millis);
  return time + "-" + RandomHex(2);
}

Status ValidateSnapshotId(std::string_view id) {
  // YYYYMMDDTHHMMSS.mmmZ-xxxx
  bool ok = id.size() == 25 && id[8] == 'T' && id[15] == '.' && id[19] == 'Z' && id[20] == '-';
  for (size_t i = 0; ok && i < id.size(); ++i) {
    if (i == 8 || i == 15 || i == 19 || i == 20) continue;
    char c = id[i];
    ok = i < 20 ? (c >= '0' && c <= '9') : ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  }
  if (ok) return {};
  return Fail(ErrorCode::kInvalidArgument, "snapshot \"" + std::string(id) +
                                               "\" is not a snapshot id (like 20261125T210500.123Z-1a2b); "
                                               "`wharf data list FEC` shows them");
}

std::string SnapshotRecordToJson(const SnapshotRecord& r) {
  ordered_json j{{"id", r.id}, {"fec", r.fec}, {"created", FormatTime(r.created)},
                 {"generation", r.generation}, {"paths", r.paths}, {"size", r.size},
                 {"sha256", r.sha256}, {"entries", r.entries}, {"bytes", r.bytes}};
  return j.dump(1) + "\n";
}

Result<SnapshotRecord> ParseSnapshotRecord(std::string_view json) {
  SnapshotRecord r;
  try {
    auto j = ordered_json::parse(json);
    if (!AllNumbersIntegers(j)) return Fail(ErrorCode::kCorrupt, "snapshot record: a number is not an integer; take a new snapshot");
    r.id = j.at("id").get<std::string>();
    r.fec = j.at("fec").get<std::string>();
    auto created = ParseTime(j.at("created").get<std::string>());
    if (!created) return Fail(ErrorCode::kCorrupt, "snapshot record: malformed created time; take a new snapshot");
    r.created = *created;
    r.generation = j.at("generation").get<uint64_t>();
    r.paths = j.at("paths").get<std::vector<std::string>>();
    r.size = j.at("size").get<uint64_t>();
    r.sha256 = j.at("sha256").get<std::string>();
    r.entries = j.value("entries", uint64_t{0});
    r.bytes = j.value("bytes", uint64_t{0});
  } catch (const nlohmann::json::exception& e) {
    return Fail(ErrorCode::kCorrupt, std::string("snapshot record is not JSON of the expected shape (") + e.what() +
                                         "); take a new snapshot, or restore another with `wharf data restore`");
  }
  WHARF_TRY(ValidateSnapshotRecord(r));
  return r;
}

Status ValidateSnapshotRecord(const SnapshotRecord& r) {
  WHARF_TRY(ValidateSnapshotId(r.id));
  WHARF_TRY(ValidateFecName(r.fec));
  if (!IsSha256Hex(r.sha256))
    return Fail(ErrorCode::kCorrupt, "snapshot " + r.id + ": sha256 is not 64 hex digits; take a new snapshot");
  if (r.paths.empty() || r.paths.size() > 64)
    return Fail(ErrorCode::kInvalidArgument, "snapshot " + r.id + ": 1 to 64 persistent paths, as `wharf persist` declares");
  for (const auto& p : r.paths) WHARF_TRY(ValidatePrefix(p));
  return {};
}

Status CheckSnapshotQuota(const std::string& fec, uint64_t size, uint64_t quota) {
  if (quota == 0 || size <= quota) return {};
  return Fail(ErrorCode::kRejected, "a snapshot of " + HumanBytes(size) + " is over " + fec +
                                        "'s quota of " + HumanBytes(quota) +
                                        " (--snapshot-quota); persist less, or raise the quota");
}

// An archive appears before its record and goes after it, so a writer killed in between
// leaves an archive no record names: never listed, never restored, removed here (under the
// store lock, where no live writer is in between).
Status RemoveUnrecordedArchives(const std::string& dir) {
  auto names = ListDir(dir);
  if (!names) return std::unexpected(names.error());
  for (const auto& name : *names) {
    if (name[0] == '.' || !name.ends_with(".tar.zst")) continue;
    std::string id = name.substr(0, name.size() - 8);
    if (!PathExists(JoinPath(dir, id + ".json"))) WHARF_TRY(RemoveTree(JoinPath(dir, name)));
  }
  return {};
}

Result<SnapshotRecord> AddSnapshot(Store& store, const SnapshotRecord& claimed, const std::string& archive,
                                   const SnapshotLimits& limits) {
  SnapshotRecord record = claimed;
  WHARF_TRY(ValidateSnapshotRecord(record));
  WHARF_TRY(CheckSnapshotQuota(record.fec, record.size, limits.quota));
  std::string dir = DataDir(store, record.fec);
  WHARF_TRY(MakeDirs(dir));
  std::string dest = JoinPath(store.root(), SnapshotArchivePath(record.fec, record.id));
  // Copy, then check the copy: what becomes visible is exactly what was checked.
  std::string staged = TempSibling(dest);
  auto added = [&]() -> Status {
    WHARF_TRY(CopyFile(archive, staged));
    auto digest = Sha256File(staged);
    if (!digest) return std::unexpected(digest.error());
    if (digest->size != record.size || digest->sha256 != record.sha256)
      return Fail(ErrorCode::kCorrupt, "snapshot " + record.id + " of " + record.fec + " has " +
                                           std::to_string(digest->size) + " bytes and another sha256 than "
                                           "declared; the upload was cut or altered, take a new one");
    auto stats = CheckSnapshot(staged, record.paths, limits.max_data);
    if (!stats) return std::unexpected(stats.error());
    record.entries = stats->entries;
    record.bytes = stats->bytes;
    auto lock = store.Lock();
    if (!lock) return std::unexpected(lock.error());
    WHARF_TRY(RemoveStaleTemps(dir));
    WHARF_TRY(RemoveUnrecordedArchives(dir));
    if (PathExists(dest))
      return Fail(ErrorCode::kAlreadyExists, "snapshot " + record.id + " of " + record.fec +
                                                 " is already stored; take a new one (a new id)");
    WHARF_TRY(RenameDurable(staged, dest));
    std::string json = SnapshotRecordToJson(record);
    WHARF_TRY(WriteFileAtomic(JoinPath(dir, record.id + ".json"), json));
    WHARF_TRY(WriteFileAtomic(JoinPath(dir, "latest.json"), json));
    // The oldest beyond `keep` go, never the latest.
    auto names = ListDir(dir);
    if (!names) return std::unexpected(names.error());
    std::vector<std::string> ids;
    for (const auto& name : *names)
      if (name.ends_with(".json") && name != "latest.json" && name[0] != '.') ids.push_back(name.substr(0, name.size() - 5));
    std::sort(ids.rbegin(), ids.rend());
    // Newest first: the new one always stays; older ones while `keep` and the quota allow.
    uint64_t kept_bytes = record.size;
    size_t kept = 1;
    for (const auto& id : ids) {
      if (id == record.id) continue;
      auto old = ReadRecord(JoinPath(dir, id + ".json"));
      uint64_t size = old ? old->size : 0;
      if (kept < static_cast<size_t>(std::max(limits.keep, 1)) &&
          (limits.quota == 0 || kept_bytes + size <= limits.quota)) {
        kept_bytes += size;
        ++kept;
        continue;
      }
      WHARF_TRY(RemoveTree(JoinPath(dir, id + ".json")));
      WHARF_TRY(RemoveTree(JoinPath(dir, id + ".tar.zst")));
    }
    return {};
  }();
  if (!added) {
    (void)RemoveTree(staged);
    return std::unexpected(added.error());
  }
  return record;
}

Result<SnapshotList> ListSnapshots(const Store& store, const std::string& fec) {
  WHARF_TRY(ValidateFecName(fec));
  std::string dir = DataDir(store, fec);
  SnapshotList list;
  auto names = ListDir(dir);
  if (!names) return std::unexpected(names.error());
  for (const auto& name : *names) {
    if (!name.ends_with(".json") || name[0] == '.') continue;
    auto record = ReadRecord(JoinPath(dir, name));
    if (!record) return std::unexpected(record.error());
    if (name == "latest.json") {
      list.latest = record->id;
    } else {
      list.snapshots.push_back(std::move(*record));
    }
  }
  std::sort(list.snapshots.begin(), list.snapshots.end(),
            [](const SnapshotRecord& a, const SnapshotRecord& b) { return a.id > b.id; });
  return list;
}

Result<SnapshotRecord> ChooseLatestSnapshot(Store& store, const std::string& fec, const std::string& id) {
  WHARF_TRY(ValidateFecName(fec));
  WHARF_TRY(ValidateSnapshotId(id));
  auto lock = store.Lock();
  if (!lock) return std::unexpected(lock.error());
  auto record = ReadRecord(JoinPath(DataDir(store, fec), id + ".json"));
  if (!record) {
    if (record.error().code == ErrorCode::kNotFound)
      return Fail(ErrorCode::kNotFound, fec + " has no snapshot " + id + "; `wharf data list " + fec + "` shows them");
    return std::unexpected(record.error());
  }
  if (record->fec != fec) return Fail(ErrorCode::kCorrupt, id + ".json names another FEC; the store was altered");
  WHARF_TRY(CheckStored(store, *record));
  WHARF_TRY(WriteFileAtomic(JoinPath(DataDir(store, fec), "latest.json"), SnapshotRecordToJson(*record)));
  return record;
}

}  // namespace wharf
