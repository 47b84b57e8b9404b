#include "store/changes.h"

#include <functional>

#include "archive/names.h"
#include "service/definition.h"

namespace wharf {
namespace {

using Edit = std::function<Result<std::vector<PackageRef>>(
    const std::optional<StoredGeneration>& current)>;

// Lock, read the current generation, edit its packages, chain, sign, write. The service
// overrides carry over unless the edit sets `*services` (when given).
Result<Generation> Change(Store& store, const std::string& fec, const Edit& edit,
                          const ChangeOptions& options, std::optional<std::string>* services = nullptr) {
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
  Generation next = NextGeneration(fec, parent, parent_json, std::move(*packages), options.now,
                                   options.lifetime_seconds);
  next.services = services && *services ? **services : parent ? parent->services : "";
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
  return Change(store, fec, [&](const std::optional<StoredGeneration>&)
                    -> Result<std::vector<PackageRef>> {
    auto history = store.History(fec);
    if (!history) return std::unexpected(history.error());
    auto target = RollbackTarget(*history, to);
    if (!target) return std::unexpected(target.error());
    services = target->services;  // the whole earlier state, service settings too
    return target->packages;
  }, options, &services);
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

}  // namespace wharf
