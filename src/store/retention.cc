#include "store/retention.h"

#include <algorithm>

#include "base/file.h"
#include "base/strings.h"
#include "crypto/sha256.h"
#include "store/settings.h"

namespace wharf {
Result<Retention> ReadRetention(const Store& store) {
  auto settings = ReadStoreSettings(store.root());
  if (!settings) return std::unexpected(settings.error());
  return Retention{settings->keep_versions, settings->keep_generations, settings->prune_on_release};
}

Status WriteRetention(const Store& store, const Retention& retention) {
  if (retention.keep_versions < 1 || retention.keep_generations < 1)
    return Fail(ErrorCode::kInvalidArgument, "retention: --keep and --generations must be at least 1");
  auto lock = store.Lock();
  if (!lock) return std::unexpected(lock.error());
  auto settings = ReadStoreSettings(store.root());
  if (!settings) return std::unexpected(settings.error());
  settings->keep_versions = retention.keep_versions;
  settings->keep_generations = retention.keep_generations;
  settings->prune_on_release = retention.prune_on_release;
  return WriteStoreSettings(store.root(), *settings);
}

size_t RetentionStart(const std::vector<Generation>& history, int releases) {
  // A release is what a rollback brings back: packages, service settings, boot scripts.
  auto same_release = [](const Generation& a, const Generation& b) {
    return a.packages == b.packages && a.services == b.services && a.init == b.init &&
           a.init_stop_on_failure == b.init_stop_on_failure;
  };
  std::vector<const Generation*> seen;  // different releases, newest first
  size_t start = history.size();
  for (size_t i = history.size(); i-- > 0;) {
    const Generation& g = history[i];
    if (std::none_of(seen.begin(), seen.end(), [&](const Generation* s) { return same_release(*s, g); })) {
      if (static_cast<int>(seen.size()) >= releases) break;
      seen.push_back(&g);
    }
    start = i;
  }
  return start;
}

std::vector<std::string> MissingVersions(const Store& store, const std::vector<PackageRef>& packages,
                                         std::map<std::string, std::string>* cache) {
  std::map<std::string, std::string> local;
  if (!cache) cache = &local;
  std::vector<std::string> missing;
  for (const auto& p : packages) {
    auto [it, added] = cache->try_emplace(p.index);
    if (added) {
      auto digest = Sha256File(JoinPath(store.root(), p.index));
      // The archive is checked by its presence: its bytes are pinned by the index's hash,
      // and a published version is immutable.
      if (digest && PathExists(JoinPath(store.root(), p.archive))) it->second = digest->sha256;
    }
    if (it->second != p.index_sha256) missing.push_back(p.name + "@" + p.version);
  }
  return missing;
}

}  // namespace wharf
