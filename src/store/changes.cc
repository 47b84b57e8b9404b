#include "store/changes.h"

#include <functional>

#include <unistd.h>

#include <algorithm>
#include <map>

#include "archive/names.h"
#include "archive/package_index.h"
#include "base/file.h"
#include "base/strings.h"
#include "crypto/sha256.h"
#include "service/definition.h"
#include "store/retention.h"
#include "store/settings.h"

namespace wharf {
namespace {

// Edits the desired state: `draft` starts as the current generation's (packages, service
// settings, boot scripts, persistent paths, forced matches), or empty for a FEC's first.
using Edit = std::function<Status(const std::optional<StoredGeneration>& current, Generation& draft)>;

// The configurations among `packages` that declare the software they were made for.
Result<std::vector<ConfigurationMatches>> DeclaredMatches(const Store& store,
                                                          const std::vector<PackageRef>& packages) {
  std::vector<ConfigurationMatches> declared;
  for (const auto& p : packages) {
    if (!IsConfiguration(p)) continue;
    auto json = ReadFile(JoinPath(store.root(), p.index), 256u << 20);
    if (!json) return std::unexpected(json.error());
    auto index = ParsePackageIndex(*json);
    if (!index) return Prefix(p.index, index.error());
    ConfigurationMatches config{p.name + "@" + p.version, {}};
    for (const auto& m : index->matches) config.matches.push_back({m.name, m.version});
    if (!config.matches.empty()) declared.push_back(std::move(config));
  }
  return declared;
}

// A configuration next to another software version than its own is refused, unless this
// change is forced or the very same mismatch was forced before (a later service setting
// must not need --force again). What is accepted is recorded in the generation.
Status CheckConfigurations(const Store& store, const std::vector<ForcedMatch>& carried, bool force,
                           Generation& next) {
  auto declared = DeclaredMatches(store, next.packages);
  if (!declared) return std::unexpected(declared.error());
  next.forced = ConfigurationMismatches(next.packages, *declared);
  for (const auto& m : next.forced) {
    if (force || std::find(carried.begin(), carried.end(), m) != carried.end()) continue;
    return Fail(ErrorCode::kRejected,
                next.fec + ": configuration " + m.configuration + " is made for " + m.wanted + ", but " +
                    (m.found.empty() ? "the FEC has no " + Split(m.wanted, '@')[0] : "the FEC gets " + m.found) +
                    "; assign " + m.wanted + " or a configuration made for the other version, or pass "
                    "--force (recorded in the generation)");
  }
  return {};
}

std::string Listed(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : ", ") + item;
  return text;
}

// A generation that names a version gc removed cannot be synced by a FEC that lacks it:
// such a generation is never signed. `what`: "generation 4" or "the new generation".
Status CheckVersionsHeld(const Store& store, const std::string& fec, const std::string& what,
                         const std::vector<PackageRef>& packages) {
  auto missing = MissingVersions(store, packages);
  if (missing.empty()) return {};
  return Fail(ErrorCode::kNotFound,
              fec + ": " + what + " names " + Listed(missing) + ", which this store no longer holds (removed by gc" +
                  " or republished with other bytes); republish " + (missing.size() > 1 ? "them" : "it") +
                  ", or roll back to a generation within the retention (`wharf history " + fec +
                  "` marks those that cannot be)");
}

// Lock, read the current generation, edit, chain, check, sign, write.
Result<Generation> Change(Store& store, const std::string& fec, const Edit& edit,
                          const ChangeOptions& options) {
  WHARF_TRY(ValidateFecName(fec));
  if (!options.dry_run && options.key == nullptr)
    return Fail(ErrorCode::kInvalidArgument, "a signing key is needed: pass --key NAME.key");
  auto lock = store.Lock();
  if (!lock) return std::unexpected(lock.error());
  auto current = store.CurrentGeneration(fec);
  if (!current) return std::unexpected(current.error());
  auto settings = ReadStoreSettings(store.root());
  if (!settings) return std::unexpected(settings.error());
  std::optional<Generation> parent;
  std::string parent_json;
  Generation draft;
  if (*current) {
    parent = (*current)->generation;
    parent_json = (*current)->json;
    draft = *parent;
  }
  WHARF_TRY(edit(*current, draft));
  WHARF_TRY(CheckVersionsHeld(store, fec, "the new generation", draft.packages));
  // A store marked offline (a DVD, a copied folder) signs what it writes as offline, with
  // the lifetime the medium needs.
  Generation next = NextGeneration(fec, parent, parent_json, std::move(draft.packages), options.now,
                                   GenerationLifetime(*settings, options.lifetime_seconds));
  next.offline = settings->offline;
  next.services = draft.services;
  next.init = draft.init;
  next.init_stop_on_failure = draft.init_stop_on_failure;
  next.persist = draft.persist;
  WHARF_TRY(CheckConfigurations(store, draft.forced, options.force, next));
  WHARF_TRY(ValidateGeneration(next));
  if (options.dry_run) return next;
  WHARF_TRY(store.WriteGeneration(next, GenerationToJson(next), *options.key));
  return next;
}

}  // namespace

Result<NameVersion> ParseNameVersion(const std::string& text) {
  auto at = text.find('@');
  if (at == std::string::npos)
    return Fail(ErrorCode::kInvalidArgument,
                "\"" + text + "\": expected NAME@VERSION, e.g. demo-ioc@1.2.0");
  NameVersion nv{text.substr(0, at), text.substr(at + 1)};
  WHARF_TRY(ValidatePackageName(nv.name));
  WHARF_TRY(ValidateVersion(nv.version));
  return nv;
}

Result<Generation> Assign(Store& store, const std::string& fec,
                          const std::vector<NameVersion>& packages, const ChangeOptions& options) {
  return Change(store, fec, [&](const std::optional<StoredGeneration>&, Generation& draft) -> Status {
    std::vector<PackageRef> refs;
    for (const auto& p : packages) {
      auto ref = store.ResolvePackage(fec, p.name, p.version);
      if (!ref) return std::unexpected(ref.error());
      refs.push_back(std::move(*ref));
    }
    auto assigned = AssignPackages(draft.packages, refs);
    if (!assigned) return std::unexpected(assigned.error());
    draft.packages = std::move(*assigned);
    return {};
  }, options);
}

Result<Generation> Unassign(Store& store, const std::string& fec,
                            const std::vector<std::string>& names, const ChangeOptions& options) {
  return Change(store, fec, [&](const std::optional<StoredGeneration>&, Generation& draft) -> Status {
    auto left = UnassignPackages(draft.packages, names);
    if (!left) return std::unexpected(left.error());
    draft.packages = std::move(*left);
    return {};
  }, options);
}

Result<Generation> Rollback(Store& store, const std::string& fec, std::optional<uint64_t> to,
                            const ChangeOptions& options) {
  return Change(store, fec, [&](const std::optional<StoredGeneration>&, Generation& draft) -> Status {
    auto history = store.History(fec);
    if (!history) return std::unexpected(history.error());
    auto target = RollbackTarget(*history, to);
    if (!target) return std::unexpected(target.error());
    WHARF_TRY(CheckVersionsHeld(store, fec, "generation " + std::to_string(target->number), target->packages));
    if (!options.may_configure &&
        (target->services != draft.services || target->init != draft.init ||
         target->init_stop_on_failure != draft.init_stop_on_failure))
      return Fail(ErrorCode::kRejected,
                  fec + ": generation " + std::to_string(target->number) +
                      " has other service settings or boot scripts than the current one (what runs as root on "
                      "the FEC); rolling back to it needs the configure right (admin or maintainer)");
    // Its boot scripts by content: a version gc removed cannot be run again.
    for (const auto& script : target->init) {
      auto paths = InitFetchPaths(script);
      if (std::none_of(paths.begin(), paths.end(),
                       [&](const std::string& p) { return PathExists(JoinPath(store.root(), p)); }))
        return Fail(ErrorCode::kNotFound,
                    fec + ": generation " + std::to_string(target->number) + "'s boot script " + script.name + " (" +
                        paths.front() + ") is no longer in the store; add it again (wharf init add " + fec + " " +
                        script.name + " FILE) instead of rolling back to it");
    }
    // The whole earlier release: packages, service settings, scripts, and the mismatches it
    // was allowed. Persistent paths describe the FEC's data, not a release: they stay.
    Persist persist = draft.persist;
    draft = *target;
    draft.persist = persist;
    return {};
  }, options);
}

Result<Generation> SetService(Store& store, const std::string& fec, const std::string& service,
                              const std::vector<std::string>& settings, const ChangeOptions& options) {
  return Change(store, fec, [&](const std::optional<StoredGeneration>& current, Generation& draft) -> Status {
    if (!current)
      return Fail(ErrorCode::kNotFound, fec + " has no generation yet; assign its packages first");
    auto updated = SetServiceOverrides(draft.services, service, settings);
    if (!updated) return std::unexpected(updated.error());
    draft.services = *updated;
    return {};
  }, options);
}

Result<Generation> SetPersist(Store& store, const std::string& fec, const Persist& persist,
                              const ChangeOptions& options) {
  return Change(store, fec, [&](const std::optional<StoredGeneration>& current, Generation& draft) -> Status {
    if (!current)
      return Fail(ErrorCode::kNotFound, fec + " has no generation yet; assign its packages first");
    draft.persist = persist;
    std::sort(draft.persist.paths.begin(), draft.persist.paths.end());
    return {};
  }, options);
}

Result<Generation> Refresh(Store& store, const std::string& fec, const ChangeOptions& options) {
  return Change(store, fec, [&](const std::optional<StoredGeneration>& current, Generation&) -> Status {
    if (!current)
      return Fail(ErrorCode::kNotFound, fec + " has no generation to refresh; assign first");
    return {};
  }, options);
}

Result<std::optional<Generation>> RefreshIfExpiring(Store& store, const std::string& fec, int64_t margin_seconds,
                                                    const ChangeOptions& options) {
  // Judged under the lock: an assign that just wrote a fresh generation makes this a no-op.
  bool fresh = false;
  auto refreshed = Change(store, fec, [&](const std::optional<StoredGeneration>& current, Generation&) -> Status {
    if (!current)
      return Fail(ErrorCode::kNotFound, fec + " has no generation to refresh; assign first");
    if (current->generation.expires - options.now > margin_seconds) {
      fresh = true;
      return Fail(ErrorCode::kAlreadyExists, fec + ": generation " + std::to_string(current->generation.number) +
                                                 " is not due for a refresh");
    }
    return {};
  }, options);
  if (fresh) return std::optional<Generation>();
  if (!refreshed) return std::unexpected(refreshed.error());
  return std::optional<Generation>(std::move(*refreshed));
}

namespace {

constexpr uint64_t kMaxInitBytes = 64u << 20;

// Stores one version of `owner`'s script by its content: fecs/<owner>/init-sha256/<sha256>,
// written atomically and durably, never changed after (a blob found altered is written
// again from the right bytes). Returns its store path.
Result<std::string> StoreInitBlob(Store& store, const std::string& owner, const std::string& content,
                                  bool dry_run) {
  std::string rel = InitBlobPath(owner, Sha256Hex(content));
  if (dry_run) return rel;
  std::string path = JoinPath(store.root(), rel);
  if (auto existing = ReadFile(path, kMaxInitBytes); existing && *existing == content) return rel;
  WHARF_TRY(MakeDirs(Dirname(path)));
  WHARF_TRY(WriteFileAtomic(path, content, 0644));
  return rel;
}

// A store from before scripts were stored by content has the script itself at
// fecs/<owner>/init/<name>: before that name changes, its bytes get their blob, so the
// generations that name it keep them (agents fetch the blob of the sha256 first).
Status MigrateInitName(Store& store, const std::string& owner, const std::string& name, bool dry_run) {
  std::string path = JoinPath(store.root(), "fecs/" + owner + "/init/" + name);
  if (dry_run || !PathExists(path) || ReadLink(path)) return {};
  auto content = ReadFile(path, kMaxInitBytes);
  if (!content) return std::unexpected(content.error());
  auto blob = StoreInitBlob(store, owner, *content, false);
  if (!blob) return std::unexpected(blob.error());
  return {};
}

// fecs/<owner>/init/<name> -> the blob it runs now: for people browsing the store, and for
// `init link` (the global script's newest version). Generations never name it.
Status PointInitName(Store& store, const std::string& owner, const std::string& name, const std::string& blob,
                     bool dry_run) {
  if (dry_run) return {};
  WHARF_TRY(MigrateInitName(store, owner, name, false));
  std::string folder = JoinPath(store.root(), "fecs/" + owner + "/init");
  WHARF_TRY(MakeDirs(folder));
  return SymlinkAtomic("../../" + blob.substr(5), JoinPath(folder, name));  // blob: "fecs/..."
}

}  // namespace

Result<Generation> EditInit(Store& store, const std::string& fec, const InitEdit& edit,
                            const ChangeOptions& options) {
  WHARF_TRY(ValidateInitName(edit.name));
  if (fec == "global") {
    if (edit.kind != InitEdit::kAdd)
      return Fail(ErrorCode::kInvalidArgument, "global scripts are added, then linked by FECs: wharf init link FEC SCRIPT");
    auto lock = store.Lock();
    if (!lock) return std::unexpected(lock.error());
    auto content = ReadFile(edit.file, kMaxInitBytes);
    if (!content) return std::unexpected(content.error());
    // A new version beside the old ones: generations already signed keep naming theirs.
    auto blob = StoreInitBlob(store, "global", *content, options.dry_run);
    if (!blob) return std::unexpected(blob.error());
    WHARF_TRY(PointInitName(store, "global", edit.name, *blob, options.dry_run));
    Generation none;
    none.fec = "global";
    return none;
  }
  return Change(store, fec, [&](const std::optional<StoredGeneration>& current, Generation& draft) -> Status {
    if (!current) return Fail(ErrorCode::kNotFound, fec + " has no generation yet; assign its packages first");
    std::map<std::string, InitScript> scripts;
    for (const auto& s : draft.init) scripts[s.name] = s;
    int timeout = scripts.contains(edit.name) ? scripts[edit.name].timeout : 60;
    switch (edit.kind) {
      case InitEdit::kAdd: {
        auto content = ReadFile(edit.file, kMaxInitBytes);
        if (!content) return std::unexpected(content.error());
        auto blob = StoreInitBlob(store, fec, *content, options.dry_run);
        if (!blob) return std::unexpected(blob.error());
        WHARF_TRY(PointInitName(store, fec, edit.name, *blob, options.dry_run));
        scripts[edit.name] = {edit.name, *blob, content->size(), Sha256Hex(*content), timeout};
        break;
      }
      case InitEdit::kLink: {
        // The global script's newest version, by content: a later `init add global` makes
        // another version, which this FEC runs only once linked again.
        auto content = ReadFile(JoinPath(store.root(), "fecs/global/init/" + edit.name), kMaxInitBytes);
        if (!content)
          return Fail(ErrorCode::kNotFound, "no global script " + edit.name + "; add it first: wharf init add global FILE");
        auto blob = StoreInitBlob(store, "global", *content, options.dry_run);  // an old store's file gets its blob
        if (!blob) return std::unexpected(blob.error());
        WHARF_TRY(PointInitName(store, fec, edit.name, *blob, options.dry_run));
        scripts[edit.name] = {edit.name, *blob, content->size(), Sha256Hex(*content), timeout};
        break;
      }
      case InitEdit::kRemove:
        if (!scripts.erase(edit.name))
          return Fail(ErrorCode::kNotFound, fec + " runs no init script " + edit.name);
        if (!options.dry_run) {
          WHARF_TRY(MigrateInitName(store, fec, edit.name, false));
          (void)::unlink(JoinPath(store.root(), "fecs/" + fec + "/init/" + edit.name).c_str());
        }
        break;
    }
    if (edit.kind != InitEdit::kRemove && edit.timeout > 0) scripts[edit.name].timeout = edit.timeout;
    if (!edit.on_failure.empty()) draft.init_stop_on_failure = edit.on_failure == "stop";
    draft.init.clear();
    for (auto& [name, script] : scripts) draft.init.push_back(script);
    return {};
  }, options);
}

}  // namespace wharf
