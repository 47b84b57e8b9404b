#include "store/changes.h"

#include <functional>

#include "archive/names.h"
#include "service/definition.h"
#include "crypto/sha256.h"
#include "base/file.h"

#include <map>
#include <unistd.h>

namespace wharf {
namespace {

using Edit = std::function<Result<std::vector<PackageRef>>(
    const std::optional<StoredGeneration>& current)>;

// Lock, read the current generation, edit its packages, chain, sign, write. The service
// overrides carry over unless the edit sets `*services` (when given).
struct InitState {
  std::vector<InitScript> scripts;
  bool stop_on_failure = false;
};

Result<Generation> Change(Store& store, const std::string& fec, const Edit& edit,
                          const ChangeOptions& options, std::optional<std::string>* services = nullptr,
                          const std::optional<InitState>* init_edit = nullptr) {
  WHARF_TRY(ValidateFecName(fec));
  if (!options.dry_run && options.key == nullptr)
    return Fail(ErrorCode::kInvalidArgument, "a signing key is needed: pass --key NAME.key");
  auto lock = store.Lock();
  if (!lock) return std::unexpected(lock.error());
  auto current = store.CurrentGeneration(fec);
  if (!current) return std::unexpected(current.error());
  auto packages = edit(*current);
  if (!packages) return std::unexpected(packages.error());
  std::optional<Generation> parent;
  std::string parent_json;
  if (*current) {
    parent = (*current)->generation;
    parent_json = (*current)->json;
  }
  const std::optional<InitState>& init = init_edit ? *init_edit : std::optional<InitState>();
  Generation next = NextGeneration(fec, parent, parent_json, std::move(*packages), options.now,
                                   options.lifetime_seconds);
  next.services = services && *services ? **services : parent ? parent->services : "";
  if (parent) {  // boot scripts carry over; an edit of them or a rollback replaces them
    next.init = parent->init;
    next.init_stop_on_failure = parent->init_stop_on_failure;
  }
  if (init) {
    next.init = init->scripts;
    next.init_stop_on_failure = init->stop_on_failure;
  }
  WHARF_TRY(ValidateGeneration(next));
  if (options.dry_run) return next;
  WHARF_TRY(store.WriteGeneration(next, GenerationToJson(next), *options.key));
  return next;
}

const std::vector<PackageRef> kNoPackages;

const std::vector<PackageRef>& PackagesOf(const std::optional<StoredGeneration>& current) {
  return current ? current->generation.packages : kNoPackages;
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
  return Change(store, fec, [&](const std::optional<StoredGeneration>& current)
                    -> Result<std::vector<PackageRef>> {
    std::vector<PackageRef> refs;
    for (const auto& p : packages) {
      auto ref = store.ResolvePackage(p.name, p.version);
      if (!ref) return std::unexpected(ref.error());
      refs.push_back(std::move(*ref));
    }
    return AssignPackages(PackagesOf(current), refs);
  }, options);
}

Result<Generation> Unassign(Store& store, const std::string& fec,
                            const std::vector<std::string>& names, const ChangeOptions& options) {
  return Change(store, fec, [&](const std::optional<StoredGeneration>& current) {
    return UnassignPackages(PackagesOf(current), names);
  }, options);
}

Result<Generation> Rollback(Store& store, const std::string& fec, std::optional<uint64_t> to,
                            const ChangeOptions& options) {
  std::optional<std::string> services;
  std::optional<InitState> init;
  return Change(store, fec, [&](const std::optional<StoredGeneration>&)
                    -> Result<std::vector<PackageRef>> {
    auto history = store.History(fec);
    if (!history) return std::unexpected(history.error());
    auto target = RollbackTarget(*history, to);
    if (!target) return std::unexpected(target.error());
    services = target->services;  // the whole earlier state, service settings and scripts too
    init = InitState{target->init, target->init_stop_on_failure};
    return target->packages;
  }, options, &services, &init);
}

Result<Generation> SetService(Store& store, const std::string& fec, const std::string& service,
                              const std::vector<std::string>& settings, const ChangeOptions& options) {
  std::optional<std::string> services;
  return Change(store, fec, [&](const std::optional<StoredGeneration>& current)
                    -> Result<std::vector<PackageRef>> {
    if (!current)
      return Fail(ErrorCode::kNotFound, fec + " has no generation yet; assign its packages first");
    auto updated = SetServiceOverrides(current->generation.services, service, settings);
    if (!updated) return std::unexpected(updated.error());
    services = *updated;
    return current->generation.packages;
  }, options, &services);
}

Result<Generation> Refresh(Store& store, const std::string& fec, const ChangeOptions& options) {
  return Change(store, fec, [&](const std::optional<StoredGeneration>& current)
                    -> Result<std::vector<PackageRef>> {
    if (!current)
      return Fail(ErrorCode::kNotFound, fec + " has no generation to refresh; assign first");
    return current->generation.packages;
  }, options);
}

Result<Generation> EditInit(Store& store, const std::string& fec, const InitEdit& edit,
                            const ChangeOptions& options) {
  WHARF_TRY(ValidateInitName(edit.name));
  if (fec == "global") {
    if (edit.kind != InitEdit::kAdd)
      return Fail(ErrorCode::kInvalidArgument, "global scripts are added, then linked by FECs: wharf init link FEC SCRIPT");
    auto lock = store.Lock();
    if (!lock) return std::unexpected(lock.error());
    auto content = ReadFile(edit.file, 64u << 20);
    if (!content) return std::unexpected(content.error());
    if (!options.dry_run)
      WHARF_TRY(WriteFileAtomic(JoinPath(store.root(), "fecs/global/init/" + edit.name), *content, 0644));
    Generation none;
    none.fec = "global";
    return none;
  }
  std::optional<InitState> init;
  std::string folder = JoinPath(store.root(), "fecs/" + fec + "/init");
  return Change(store, fec, [&](const std::optional<StoredGeneration>& current)
                    -> Result<std::vector<PackageRef>> {
    if (!current) return Fail(ErrorCode::kNotFound, fec + " has no generation yet; assign its packages first");
    const Generation& g = current->generation;
    std::map<std::string, InitScript> scripts;
    for (const auto& s : g.init) scripts[s.name] = s;
    std::string own = "fecs/" + fec + "/init/" + edit.name;
    std::string global = "fecs/global/init/" + edit.name;
    switch (edit.kind) {
      case InitEdit::kAdd: {
        auto content = ReadFile(edit.file, 64u << 20);
        if (!content) return std::unexpected(content.error());
        if (!options.dry_run) {
          WHARF_TRY(MakeDirs(folder));
          WHARF_TRY(WriteFileAtomic(JoinPath(store.root(), own), *content, 0644));
        }
        scripts[edit.name] = {edit.name, own, content->size(), Sha256Hex(*content), 60};
        break;
      }
      case InitEdit::kLink: {
        auto content = ReadFile(JoinPath(store.root(), global), 64u << 20);
        if (!content)
          return Fail(ErrorCode::kNotFound, "no global script " + edit.name + "; add it first: wharf init add global FILE");
        // Stored once: the FEC's folder only links to it (for people browsing the store).
        if (!options.dry_run) {
          WHARF_TRY(MakeDirs(folder));
          WHARF_TRY(SymlinkAtomic("../../global/init/" + edit.name, JoinPath(store.root(), own)));
        }
        scripts[edit.name] = {edit.name, global, content->size(), Sha256Hex(*content), 60};
        break;
      }
      case InitEdit::kRemove:
        if (!scripts.erase(edit.name))
          return Fail(ErrorCode::kNotFound, fec + " runs no init script " + edit.name);
        if (!options.dry_run) (void)::unlink(JoinPath(store.root(), own).c_str());
        break;
    }
    if (edit.kind != InitEdit::kRemove && edit.timeout > 0) scripts[edit.name].timeout = edit.timeout;
    InitState state{{}, edit.on_failure.empty() ? g.init_stop_on_failure : edit.on_failure == "stop"};
    for (auto& [name, script] : scripts) state.scripts.push_back(script);
    init = std::move(state);
    return g.packages;
  }, options, nullptr, &init);
}

}  // namespace wharf
