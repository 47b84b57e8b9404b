#include "generation/generation.h"

#include <cctype>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "archive/names.h"
#include "base/strings.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

using nlohmann::ordered_json;

ordered_json PackageToJson(const PackageRef& p) {
  ordered_json j;
  j["name"] = p.name;
  j["version"] = p.version;
  j["prefix"] = p.prefix;
  j["archive"] = {{"path", p.archive}, {"size", p.archive_size}, {"sha256", p.archive_sha256}};
  j["index"] = {{"path", p.index}, {"size", p.index_size}, {"sha256", p.index_sha256}};
  return j;
}

PackageRef PackageFromJson(const ordered_json& j) {
  PackageRef p;
  p.name = j.at("name").get<std::string>();
  p.version = j.at("version").get<std::string>();
  p.prefix = j.at("prefix").get<std::string>();
  p.archive = j.at("archive").at("path").get<std::string>();
  p.archive_size = j.at("archive").at("size").get<uint64_t>();
  p.archive_sha256 = j.at("archive").at("sha256").get<std::string>();
  p.index = j.at("index").at("path").get<std::string>();
  p.index_size = j.at("index").at("size").get<uint64_t>();
  p.index_sha256 = j.at("index").at("sha256").get<std::string>();
  return p;
}

Status ValidatePackageRef(const PackageRef& p) {
  WHARF_TRY(ValidatePackageName(p.name));
  WHARF_TRY(ValidateVersion(p.version));
  WHARF_TRY(ValidatePrefix(p.prefix));
  std::string folder = "software/" + p.name + "/" + p.version + "/";
  if (p.archive != folder + p.name + "-" + p.version + ".tar.zst" ||
      p.index != folder + "package.json")
    return Fail(ErrorCode::kCorrupt, "package " + p.name + "@" + p.version +
                                         ": archive or index path is not the store's own shape");
  if (!IsSha256Hex(p.archive_sha256) || !IsSha256Hex(p.index_sha256))
    return Fail(ErrorCode::kCorrupt,
                "package " + p.name + "@" + p.version + ": sha256 is not 64 hex digits");
  return {};
}

Status CheckPrefixesApart(const std::vector<PackageRef>& packages) {
  for (size_t i = 0; i < packages.size(); ++i)
    for (size_t j = i + 1; j < packages.size(); ++j)
      if (PrefixesOverlap(packages[i].prefix, packages[j].prefix))
        return Fail(ErrorCode::kInvalidArgument,
                    "packages " + packages[i].name + " (" + packages[i].prefix + ") and " +
                        packages[j].name + " (" + packages[j].prefix +
                        ") overlap; one FEC cannot hold both: repack one under another prefix");
  return {};
}

void SortByName(std::vector<PackageRef>& packages) {
  std::sort(packages.begin(), packages.end(),
            [](const PackageRef& a, const PackageRef& b) { return a.name < b.name; });
}

}  // namespace

std::string GenerationToJson(const Generation& g) {
  ordered_json j;
  j["format"] = g.format;
  j["fec"] = g.fec;
  j["number"] = g.number;
  j["parent"] = g.parent;
  j["created"] = FormatTime(g.created);
  j["expires"] = FormatTime(g.expires);
  j["packages"] = ordered_json::array();
  for (const auto& p : g.packages) j["packages"].push_back(PackageToJson(p));
  if (!g.services.empty()) j["services"] = ordered_json::parse(g.services);
  if (!g.init.empty()) {
    j["init"] = ordered_json::array();
    for (const auto& i : g.init)
      j["init"].push_back({{"name", i.name}, {"path", i.path}, {"size", i.size}, {"sha256", i.sha256},
                           {"timeout", i.timeout}});
    j["init_on_failure"] = g.init_stop_on_failure ? "stop" : "continue";
  }
  return j.dump(2) + "\n";
}

Result<Generation> ParseGeneration(std::string_view json) {
  Generation g;
  try {
    auto j = ordered_json::parse(json);
    g.format = j.at("format").get<int>();
    if (g.format != kGenerationFormat)
      return Fail(ErrorCode::kCorrupt, "generation format " + std::to_string(g.format) +
                                           " is not known to this wharf; upgrade the agent");
    g.fec = j.at("fec").get<std::string>();
    g.number = j.at("number").get<uint64_t>();
    g.parent = j.at("parent").get<std::string>();
    auto created = ParseTime(j.at("created").get<std::string>());
    auto expires = ParseTime(j.at("expires").get<std::string>());
    if (!created || !expires)
      return Fail(ErrorCode::kCorrupt, "generation has a malformed created or expires time");
    g.created = *created;
    g.expires = *expires;
    for (const auto& p : j.at("packages")) g.packages.push_back(PackageFromJson(p));
    if (j.contains("init")) {
      for (const auto& i : j.at("init"))
        g.init.push_back({i.at("name").get<std::string>(), i.at("path").get<std::string>(),
                          i.at("size").get<uint64_t>(), i.at("sha256").get<std::string>(),
                          i.at("timeout").get<int>()});
      g.init_stop_on_failure = j.value("init_on_failure", std::string("continue")) == "stop";
    }
    if (j.contains("services")) {
      if (!j["services"].is_object())
        return Fail(ErrorCode::kCorrupt, "generation services must be an object of overrides");
      g.services = j["services"].dump();
    }
  } catch (const nlohmann::json::exception& e) {
    return Fail(ErrorCode::kCorrupt, std::string("generation is not valid JSON of the "
                                                 "expected shape (") + e.what() + ")");
  }
  WHARF_TRY(ValidateGeneration(g));
  return g;
}

Status ValidateGeneration(const Generation& g) {
  WHARF_TRY(ValidateFecName(g.fec));
  if (g.number == 0) return Fail(ErrorCode::kCorrupt, "generation number 0 is not valid");
  if (!g.parent.empty() && !IsSha256Hex(g.parent))
    return Fail(ErrorCode::kCorrupt, "generation parent is not a sha256");
  if (g.expires <= g.created)
    return Fail(ErrorCode::kCorrupt, "generation expires before it was created");
  for (size_t i = 0; i < g.packages.size(); ++i) {
    WHARF_TRY(ValidatePackageRef(g.packages[i]));
    if (i > 0 && !(g.packages[i - 1].name < g.packages[i].name))
      return Fail(ErrorCode::kCorrupt, "generation lists package " + g.packages[i].name +
                                           " twice or out of order");
  }
  for (size_t i = 0; i < g.init.size(); ++i) {
    const InitScript& script = g.init[i];
    WHARF_TRY(ValidateInitName(script.name));
    auto parts = Split(script.path, '/');
    bool shaped = parts.size() == 4 && parts[0] == "fecs" && (parts[1] == g.fec || parts[1] == "global") &&
                  parts[2] == "init" && ValidateInitName(parts[3]).has_value();
    if (!shaped)
      return Fail(ErrorCode::kUnsafe, "init script " + script.name + ": path \"" + script.path +
                                          "\" is not fecs/<this FEC or global>/init/<name>");
    if (!IsSha256Hex(script.sha256)) return Fail(ErrorCode::kCorrupt, "init script " + script.name + ": bad sha256");
    if (script.size > (64u << 20)) return Fail(ErrorCode::kCorrupt, "init script " + script.name + " is over 64 MiB");
    if (script.timeout < 1 || script.timeout > 86400)
      return Fail(ErrorCode::kCorrupt, "init script " + script.name + ": timeout must be 1 to 86400 s");
    if (i > 0 && !(g.init[i - 1].name < script.name))
      return Fail(ErrorCode::kCorrupt, "init script " + script.name + " is listed twice or out of order");
  }
  return CheckPrefixesApart(g.packages);
}


Result<std::vector<PackageRef>> AssignPackages(const std::vector<PackageRef>& current,
                                               const std::vector<PackageRef>& changes) {
  for (size_t i = 0; i < changes.size(); ++i)
    for (size_t j = i + 1; j < changes.size(); ++j)
      if (changes[i].name == changes[j].name)
        return Fail(ErrorCode::kInvalidArgument,
                    "package " + changes[i].name + " named twice (" + changes[i].version +
                        " and " + changes[j].version + "); a FEC runs one version of each");
  std::vector<PackageRef> result;
  for (const auto& p : current) {
    bool replaced = std::any_of(changes.begin(), changes.end(),
                                [&](const PackageRef& c) { return c.name == p.name; });
    if (!replaced) result.push_back(p);
  }
  result.insert(result.end(), changes.begin(), changes.end());
  SortByName(result);
  WHARF_TRY(CheckPrefixesApart(result));
  return result;
}

Result<std::vector<PackageRef>> UnassignPackages(const std::vector<PackageRef>& current,
                                                 const std::vector<std::string>& names) {
  std::vector<PackageRef> result = current;
  for (const auto& name : names) {
    auto it = std::find_if(result.begin(), result.end(),
                           [&](const PackageRef& p) { return p.name == name; });
    if (it == result.end())
      return Fail(ErrorCode::kNotFound,
                  "package " + name + " is not assigned; `wharf show FEC` lists what is");
    result.erase(it);
  }
  return result;
}

Generation NextGeneration(std::string_view fec, const std::optional<Generation>& parent,
                          std::string_view parent_json, std::vector<PackageRef> packages,
                          int64_t now, int64_t lifetime_seconds) {
  Generation g;
  g.fec = std::string(fec);
  g.number = parent ? parent->number + 1 : 1;
  g.parent = parent ? Sha256Hex(parent_json) : "";
  // Time never goes backwards along the chain, even if this machine's clock does.
  g.created = parent ? std::max(now, parent->created) : now;
  g.expires = g.created + lifetime_seconds;
  SortByName(packages);
  g.packages = std::move(packages);
  return g;
}

Result<Generation> RollbackTarget(const std::vector<Generation>& history,
                                  std::optional<uint64_t> to) {
  if (history.empty())
    return Fail(ErrorCode::kNotFound, "no generation yet; nothing to roll back");
  const Generation& current = history.back();
  if (to) {
    for (const auto& g : history)
      if (g.number == *to) return g;
    return Fail(ErrorCode::kNotFound, "generation " + std::to_string(*to) + " of " + current.fec +
                                          " does not exist; `wharf show " + current.fec +
                                          "` lists the history");
  }
  for (auto it = history.rbegin() + 1; it != history.rend(); ++it)
    if (it->packages != current.packages) return *it;
  return Fail(ErrorCode::kNotFound, current.fec + ": no earlier generation with other packages; "
                                                  "nothing to roll back to");
}

Result<Acceptance> CheckAcceptable(const Generation& candidate, std::string_view fec,
                                   const AcceptedFloor& floor, int64_t now) {
  if (candidate.fec != fec)
    return Fail(ErrorCode::kRejected, std::string(fec) + ": generation " +
                                          std::to_string(candidate.number) + " is for FEC " +
                                          candidate.fec + ", not " + std::string(fec) +
                                          "; check the store's fecs/ folder");
  if (candidate.number < floor.number)
    return Fail(ErrorCode::kRejected,
                std::string(fec) + ": generation " + std::to_string(candidate.number) +
                    " is older than generation " + std::to_string(floor.number) +
                    " already applied; refusing (a replay?). Publish a new generation to roll back");
  Acceptance acceptance;
  acceptance.clock_behind = now < floor.created;
  acceptance.effective_now = std::max(now, floor.created);
  if (acceptance.effective_now >= candidate.expires)
    return Fail(ErrorCode::kRejected,
                std::string(fec) + ": generation " + std::to_string(candidate.number) +
                    " expired at " + FormatTime(candidate.expires) +
                    (acceptance.clock_behind ? " (this clock is behind; judged by the newest "
                                               "accepted generation's time)"
                                             : "") +
                    "; run `wharf refresh " + std::string(fec) + "` on the store");
  return acceptance;
}

}  // namespace wharf
