#include "store/gc.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <set>

#include "base/file.h"
#include "store/retention.h"

namespace wharf {
namespace {

uint64_t TreeBytes(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  if (!S_ISDIR(st.st_mode)) return static_cast<uint64_t>(st.st_size);
  uint64_t total = 0;
  for (const auto& name : ListDir(path).value_or(std::vector<std::string>{})) total += TreeBytes(JoinPath(path, name));
  return total;
}

// When a version was published, to the nanosecond (its package.json is written once).
int64_t PublishedNs(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

}  // namespace

Result<GcReport> CollectGarbage(Store& store, const GcOptions& options) {
  if (options.keep_versions < 1 || options.keep_generations < 1)
    return Fail(ErrorCode::kInvalidArgument, "gc: --keep and --generations must be at least 1");
  auto lock = store.Lock();  // no assign or publish can start naming a version meanwhile
  if (!lock) return std::unexpected(lock.error());

  // What the FECs may still run or roll back to: their generations within the retention.
  std::set<std::string> assigned;  // store folders of versions: "software/<name>/<version>"
  auto fecs = store.Fecs();
  if (!fecs) return std::unexpected(fecs.error());
  for (const auto& fec : *fecs) {
    auto history = store.History(fec);
    if (!history) return std::unexpected(history.error());
    size_t from = RetentionStart(*history, options.keep_generations);
    for (size_t i = from; i < history->size(); ++i)
      for (const auto& p : (*history)[i].packages) assigned.insert(Dirname(p.index));
  }

  GcReport report;
  if (options.only.empty()) WHARF_TRY(CollectInitScripts(store, options, report));  // a release prunes its packages only
  auto homes = store.Packages();
  if (!homes) return std::unexpected(homes.error());
  for (const auto& home : *homes) {
    if (!options.only.empty() && std::find(options.only.begin(), options.only.end(), home.name) == options.only.end())
      continue;
    auto versions = store.Versions(home);
    if (!versions) continue;
    std::string folder = JoinPath(store.root(), home.folder());
    std::vector<std::pair<int64_t, std::string>> by_time;  // newest first
    for (const auto& v : *versions) by_time.push_back({PublishedNs(JoinPath(folder, v + "/package.json")), v});
    std::sort(by_time.rbegin(), by_time.rend());
    for (size_t i = static_cast<size_t>(options.keep_versions); i < by_time.size(); ++i) {
      const std::string& version = by_time[i].second;
      std::string dir = JoinPath(folder, version);
      GcVersion entry{home.name, version, TreeBytes(dir), home.area};
      if (assigned.contains(home.folder() + "/" + version)) {
        report.kept_assigned.push_back(entry);
        continue;
      }
      if (!options.dry_run) {
        std::string hidden = JoinPath(folder, "." + version + ".gc-" + std::to_string(::getpid()));
        WHARF_TRY(RenameDurable(dir, hidden));
        WHARF_TRY(RemoveTree(hidden));
      }
      report.freed_bytes += entry.bytes;
      report.removed.push_back(std::move(entry));
    }
  }
  return report;
}

Status CollectInitScripts(Store& store, const GcOptions& options, GcReport& report) {
  auto fecs = store.Fecs();
  if (!fecs) return std::unexpected(fecs.error());
  std::vector<std::string> owners = *fecs;
  owners.push_back("global");
  std::set<std::string> named;  // store paths of blobs: "fecs/<owner>/init-sha256/<sha256>"
  for (const auto& fec : *fecs) {
    auto history = store.History(fec);
    if (!history) return std::unexpected(history.error());
    size_t from = RetentionStart(*history, options.keep_generations);  // as the versions
    for (size_t i = from; i < history->size(); ++i)
      for (const auto& script : (*history)[i].init)
        for (const auto& path : InitFetchPaths(script)) named.insert(path);
  }
  // What the names point at now: the global scripts FECs link next, the FECs' own.
  for (const auto& owner : owners) {
    std::string folder = "fecs/" + owner + "/init";
    for (const auto& name : ListDir(JoinPath(store.root(), folder)).value_or(std::vector<std::string>{}))
      if (auto target = ReadLink(JoinPath(store.root(), folder + "/" + name)); target && target->starts_with("../../"))
        named.insert("fecs/" + target->substr(6));
  }
  for (const auto& owner : owners) {
    std::string folder = "fecs/" + owner + "/init-sha256";
    for (const auto& blob : ListDir(JoinPath(store.root(), folder)).value_or(std::vector<std::string>{})) {
      std::string rel = folder + "/" + blob;
      if (blob[0] == '.' || named.contains(rel)) continue;  // a temporary: the writer's
      std::string path = JoinPath(store.root(), rel);
      GcVersion entry{rel, "", TreeBytes(path), "init"};
      if (!options.dry_run && ::unlink(path.c_str()) != 0)
        return Fail(ErrorCode::kIo, path + ": cannot remove (" + std::strerror(errno) + "); check the store's permissions");
      report.freed_bytes += entry.bytes;
      report.removed_scripts.push_back(std::move(entry));
    }
  }
  return {};
}

}  // namespace wharf
