#include "ops/ops.h"

#include <cctype>
#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/strings.h"
#include "store/data.h"
#include "store/gc.h"
#include "store/retention.h"
#include "store/settings.h"

namespace wharf::ops {
namespace {

Json PackageJson(const PackageRef& p) {
  Json j{{"name", p.name}, {"version", p.version}, {"prefix", p.prefix},
         {"archive", p.archive}, {"size", p.archive_size}, {"sha256", p.archive_sha256}};
  if (IsConfiguration(p)) j["kind"] = "configuration";
  return j;
}

Json GcJson(const GcReport& report) {
  auto list = [](const std::vector<GcVersion>& versions) {
    Json out = Json::array();
    for (const auto& v : versions)
      out.push_back({{"name", v.name}, {"version", v.version}, {"bytes", v.bytes}, {"area", v.area}});
    return out;
  };
  Json scripts = Json::array();
  for (const auto& s : report.removed_scripts) scripts.push_back({{"path", s.name}, {"bytes", s.bytes}});
  return Json{{"removed", list(report.removed)}, {"kept_assigned", list(report.kept_assigned)},
              {"removed_scripts", scripts}, {"freed_bytes", report.freed_bytes}};
}

// A release's pruning: gc's rules, for the released packages only. Nothing (null) when the
// release does not prune.
Result<Json> PruneReleased(Store& store, const Prune& prune, std::vector<std::string> names, bool dry_run) {
  if (prune.prune == false) return Json(nullptr);
  auto retention = ReadRetention(store);
  if (!retention) return std::unexpected(retention.error());
  if (!prune.prune.value_or(retention->prune_on_release)) return Json(nullptr);
  GcOptions options{prune.keep_versions > 0 ? prune.keep_versions : retention->keep_versions,
                    retention->keep_generations, dry_run, std::move(names)};
  auto report = CollectGarbage(store, options);
  if (!report) return Prefix("released, but not pruned (run `wharf gc`)", report.error());
  Json j = GcJson(*report);
  j["keep"] = options.keep_versions;
  j["generations"] = options.keep_generations;
  return j;
}

}  // namespace

Json GenerationSummary(const Generation& g) {
  Json j{{"fec", g.fec}, {"number", g.number}, {"created", FormatTime(g.created)},
         {"expires", FormatTime(g.expires)}, {"packages", Json::array()}};
  if (g.offline) j["offline"] = true;
  for (const auto& p : g.packages) j["packages"].push_back(PackageJson(p));
  if (!g.services.empty()) j["services"] = Json::parse(g.services);
  if (!g.init.empty()) {
    j["init"] = Json::array();
    for (const auto& s : g.init) j["init"].push_back({{"name", s.name}, {"path", s.path}, {"timeout", s.timeout}});
    j["init_on_failure"] = g.init_stop_on_failure ? "stop" : "continue";
  }
  if (!g.persist.paths.empty()) j["persist"] = {{"paths", g.persist.paths}, {"interval", g.persist.interval}};
  if (!g.forced.empty()) {
    j["forced"] = Json::array();
    for (const auto& f : g.forced)
      j["forced"].push_back({{"configuration", f.configuration}, {"wanted", f.wanted}, {"found", f.found}});
  }
  return j;
}

std::string PackagesText(const Generation& g) {
  std::string text;
  for (const auto& p : g.packages) text += (text.empty() ? "" : " ") + p.name + "@" + p.version;
  return text.empty() ? "(nothing)" : text;
}

Result<int64_t> ParseDuration(const std::string& text, const std::string& what) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  std::string unit = text.substr(digits);
  int64_t scale = unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600
                : unit == "d" || unit.empty() ? 86400 : unit == "y" ? 365 * 86400 : 0;
  if (digits == 0 || digits > 9 || scale == 0 || std::stoll(text.substr(0, digits)) == 0)
    return Fail(ErrorCode::kInvalidArgument,
                what + " " + text + ": expected a positive duration like 90s, 12h, 30d or 10y");
  return std::stoll(text.substr(0, digits)) * scale;
}

Result<Json> Publish(Store& store, const std::string& archive, const std::string& index,
                     bool dry_run, int delta_bases, const Prune& prune) {
  auto outcome = store.Publish(archive, index, dry_run, delta_bases);
  if (!outcome) return std::unexpected(outcome.error());
  const PackageIndex& i = outcome->index;
  // A dry run does not plan the pruning: the store does not hold the new version then.
  auto pruned = dry_run ? Result<Json>(Json(nullptr)) : PruneReleased(store, prune, {i.name}, false);
  if (!pruned) return Prefix(i.name + "@" + i.version, pruned.error());
  auto versions = store.Versions({StoreArea(i.configuration, i.fec), i.name});
  Json j{{"name", i.name}, {"version", i.version}, {"size", i.archive_size},
         {"sha256", i.archive_sha256}, {"already_present", outcome->already_present},
         {"dry_run", dry_run}, {"versions", versions ? versions->size() : 0}};
  if (!pruned->is_null()) j["pruned"] = std::move(*pruned);
  return j;
}

Result<Json> Change(Store& store, const ChangeRequest& request, const ChangeOptions& options) {
  Result<Generation> result = Fail(ErrorCode::kInvalidArgument, "unknown change");
  switch (request.kind) {
    case ChangeKind::kAssign: {
      std::vector<NameVersion> packages;
      for (const auto& spec : request.items) {
        auto nv = ParseNameVersion(spec);
        if (!nv) return std::unexpected(nv.error());
        packages.push_back(*nv);
      }
      if (packages.empty())
        return Fail(ErrorCode::kInvalidArgument, "assign: name at least one NAME@VERSION");
      result = Assign(store, request.fec, packages, options);
      break;
    }
    case ChangeKind::kUnassign:
      if (request.items.empty())
        return Fail(ErrorCode::kInvalidArgument, "unassign: name at least one package");
      result = Unassign(store, request.fec, request.items, options);
      break;
    case ChangeKind::kRollback:
      result = Rollback(store, request.fec, request.to, options);
      break;
    case ChangeKind::kRefresh:
      result = Refresh(store, request.fec, options);
      break;
    case ChangeKind::kPersist:
      result = SetPersist(store, request.fec, {request.items, request.interval}, options);
      break;
    case ChangeKind::kServiceSet:
      if (request.items.empty())
        return Fail(ErrorCode::kInvalidArgument, "service set: give at least one KEY=VALUE");
      result = SetService(store, request.fec, request.service, request.items, options);
      break;
  }
  if (!result) return std::unexpected(result.error());
  Json j = GenerationSummary(*result);
  j["dry_run"] = options.dry_run;
  if (request.kind == ChangeKind::kAssign && !options.dry_run) {  // (a dry run: as publish)
    std::vector<std::string> names;
    for (const auto& p : request.items) names.push_back(p.substr(0, p.find('@')));
    auto pruned = PruneReleased(store, request.prune, names, false);
    if (!pruned) return Prefix(request.fec + ": generation " + std::to_string(result->number), pruned.error());
    if (!pruned->is_null()) j["pruned"] = std::move(*pruned);
  }
  return j;
}

Result<std::map<uint64_t, std::vector<std::string>>> MissingByGeneration(const Store& store,
                                                                         const std::string& fec) {
  auto history = store.History(fec);
  if (!history) return std::unexpected(history.error());
  std::map<std::string, std::string> hashes;
  std::map<uint64_t, std::vector<std::string>> out;
  for (const auto& g : *history) out[g.number] = MissingVersions(store, g.packages, &hashes);
  return out;
}

Result<Json> Show(const Store& store, const std::string& fec) {
  auto current = store.CurrentGeneration(fec);
  if (!current) return std::unexpected(current.error());
  if (!*current)
    return Fail(ErrorCode::kNotFound, fec + " has no generation in the store; `wharf assign` one");
  auto history = store.History(fec);
  if (!history) return std::unexpected(history.error());
  const Generation& g = (*current)->generation;
  Json j = GenerationSummary(g);
  j["parent"] = g.parent;
  j["history"] = Json::array();
  std::map<std::string, std::string> hashes;
  for (const auto& h : *history)
    j["history"].push_back({{"number", h.number}, {"created", FormatTime(h.created)},
                            {"expires", FormatTime(h.expires)}, {"offline", h.offline},
                            {"packages", PackagesText(h)}, {"missing", MissingVersions(store, h.packages, &hashes)}});
  return j;
}

Json StoreSettingsJson(const StoreSettings& settings) {
  return Json{{"offline", settings.offline},
              {"offline_lifetime_seconds", settings.offline_lifetime},
              {"changed", settings.changed ? Json(FormatTime(settings.changed)) : Json(nullptr)},
              {"retention", {{"keep", settings.keep_versions}, {"generations", settings.keep_generations},
                             {"prune_on_release", settings.prune_on_release}}}};
}

Result<Json> StoreMode(Store& store, std::optional<bool> offline, std::optional<int64_t> lifetime,
                       const ChangeOptions& options) {
  auto settings = ReadStoreSettings(store.root());
  if (!settings) return std::unexpected(settings.error());
  if (!offline) return StoreSettingsJson(*settings);
  if (!options.dry_run && options.key == nullptr)
    return Fail(ErrorCode::kInvalidArgument, "a signing key is needed to re-sign the FECs' generations: pass --key NAME.key");
  StoreSettings wanted = *settings;
  wanted.offline = *offline;
  if (lifetime) wanted.offline_lifetime = *lifetime;
  wanted.changed = options.now;
  if (!options.dry_run) {
    auto lock = store.Lock();
    if (!lock) return std::unexpected(lock.error());
    WHARF_TRY(WriteStoreSettings(store.root(), wanted));
  }
  Json out = StoreSettingsJson(wanted);
  out["dry_run"] = options.dry_run;
  out["refreshed"] = Json::array();
  // Every FEC's current packages signed again under the new setting: what is on the
  // medium now carries the offline marker and its lifetime (or, back online, loses them).
  auto fecs = store.Fecs();
  if (!fecs) return std::unexpected(fecs.error());
  for (const auto& fec : *fecs) {
    if (fec == "global") continue;
    auto current = store.CurrentGeneration(fec);
    if (!current) return std::unexpected(current.error());
    if (!*current) continue;
    if (options.dry_run) {
      Generation would = (*current)->generation;
      ++would.number;
      would.created = std::max(options.now, would.created);
      would.expires = would.created + GenerationLifetime(wanted, options.lifetime_seconds);
      would.offline = wanted.offline;
      out["refreshed"].push_back(GenerationSummary(would));
      continue;
    }
    auto refreshed = Refresh(store, fec, options);
    if (!refreshed) return Prefix("the setting is written; re-signing " + fec, refreshed.error());
    out["refreshed"].push_back(GenerationSummary(*refreshed));
  }
  return out;
}

Result<Json> ListFecs(const Store& store) {
  auto fecs = store.Fecs();
  if (!fecs) return std::unexpected(fecs.error());
  Json out = Json::array();
  for (const auto& fec : *fecs) {
    auto current = store.CurrentGeneration(fec);
    if (!current || !*current) continue;
    out.push_back(GenerationSummary((*current)->generation));
  }
  return out;
}

Result<Json> Init(Store& store, const std::string& fec, const InitEdit& edit, const ChangeOptions& options) {
  auto result = EditInit(store, fec, edit, options);
  if (!result) return std::unexpected(result.error());
  if (fec == "global") return Json{{"fec", "global"}, {"stored", edit.name}};
  Json j = GenerationSummary(*result);
  j["dry_run"] = options.dry_run;
  return j;
}

Result<Json> Gc(Store& store, int keep_versions, int keep_generations, bool dry_run) {
  auto retention = ReadRetention(store);
  if (!retention) return std::unexpected(retention.error());
  GcOptions options{keep_versions > 0 ? keep_versions : retention->keep_versions,
                    keep_generations > 0 ? keep_generations : retention->keep_generations, dry_run, {}};
  auto report = CollectGarbage(store, options);
  if (!report) return std::unexpected(report.error());
  Json j = GcJson(*report);
  j["dry_run"] = dry_run;
  j["keep"] = options.keep_versions;
  j["generations"] = options.keep_generations;
  return j;
}

Result<Json> SetRetention(Store& store, std::optional<int> keep, std::optional<int> generations,
                          std::optional<bool> prune_on_release) {
  auto current = ReadRetention(store);
  if (!current) return std::unexpected(current.error());
  Retention wanted = *current;
  if (keep) wanted.keep_versions = *keep;
  if (generations) wanted.keep_generations = *generations;
  if (prune_on_release) wanted.prune_on_release = *prune_on_release;
  WHARF_TRY(WriteRetention(store, wanted));
  return RetentionJson(store);
}

Result<Json> RetentionJson(const Store& store) {
  auto r = ReadRetention(store);
  if (!r) return std::unexpected(r.error());
  return Json{{"keep", r->keep_versions}, {"generations", r->keep_generations},
              {"prune_on_release", r->prune_on_release}};
}

Json SnapshotJson(const SnapshotRecord& record) { return Json::parse(SnapshotRecordToJson(record)); }

Result<Json> DataList(const Store& store, const std::string& fec) {
  auto list = ListSnapshots(store, fec);
  if (!list) return std::unexpected(list.error());
  Json out{{"fec", fec}, {"latest", list->latest}, {"snapshots", Json::array()}};
  for (const auto& r : list->snapshots) out["snapshots"].push_back(SnapshotJson(r));
  return out;
}

Result<Json> DataRestore(Store& store, const std::string& fec, const std::string& id) {
  auto record = ChooseLatestSnapshot(store, fec, id);
  if (!record) return std::unexpected(record.error());
  return SnapshotJson(*record);
}

Result<Json> ListPackages(const Store& store) {
  auto homes = store.Packages();
  if (!homes) return std::unexpected(homes.error());
  Json out = Json::array();
  for (const auto& home : *homes) {
    auto versions = store.Versions(home);
    if (!versions) continue;
    Json entry{{"name", home.name}, {"kind", home.configuration() ? "configuration" : "software"},
               {"versions", *versions}};
    if (home.configuration() && home.area != "configuration") entry["fec"] = Split(home.area, '/')[1];
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace wharf::ops
