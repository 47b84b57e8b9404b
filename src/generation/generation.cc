#include "generation/generation.h"

#include <cctype>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/json_integers.h"
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

Status ValidatePackageRef(const PackageRef& p, const std::string& fec) {
  WHARF_TRY(ValidatePackageName(p.name));
  WHARF_TRY(ValidateVersion(p.version));
  WHARF_TRY(ValidatePrefix(p.prefix));
  std::string leaf = p.name + "/" + p.version + "/";
  std::string folder;
  for (const char* area : {"software/", "configuration/"})
    if (p.index.starts_with(area)) folder = area + leaf;
  // A FEC's own configuration, never another FEC's.
  if (p.index.starts_with("fecs/")) folder = "fecs/" + fec + "/configuration/" + leaf;
  if (folder.empty() || p.archive != folder + p.name + "-" + p.version + ".tar.zst" ||
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

Status ValidatePersist(const Persist& persist, const std::vector<PackageRef>& packages) {
  if (persist.paths.empty()) return {};
  if (persist.interval < 60 || persist.interval > 30 * 86400)
    return Fail(ErrorCode::kInvalidArgument, "persist interval must be 1 minute to 30 days");
  if (persist.paths.size() > 64) return Fail(ErrorCode::kInvalidArgument, "at most 64 persistent paths");
  for (size_t i = 0; i < persist.paths.size(); ++i) {
    const std::string& path = persist.paths[i];
    if (!ValidatePrefix(path))
      return Fail(ErrorCode::kInvalidArgument, "persistent path \"" + path +
                                                   "\" is not an absolute, normalised path of plain names");
    if (i > 0 && !(persist.paths[i - 1] < path))
      return Fail(ErrorCode::kInvalidArgument, "persistent path " + path + " is listed twice or out of order");
    if (i > 0 && PrefixesOverlap(persist.paths[i - 1], path))
      return Fail(ErrorCode::kInvalidArgument, "persistent paths " + persist.paths[i - 1] + " and " + path +
                                                   " overlap; name the outer one only");
    for (const auto& p : packages)
      if (PrefixesOverlap(p.prefix, path))
        return Fail(ErrorCode::kInvalidArgument,
                    "persistent path " + path + " overlaps the prefix of " + p.name + " (" + p.prefix +
                        "), which is read-only and replaced on every update; keep data outside it");
  }
  return {};
}

void SortByName(std::vector<PackageRef>& packages) {
  std::sort(packages.begin(), packages.end(),
            [](const PackageRef& a, const PackageRef& b) { return a.name < b.name; });
}

}  // namespace

std::string InitBlobPath(std::string_view owner, std::string_view sha256) {
  return "fecs/" + std::string(owner) + "/init-sha256/" + std::string(sha256);
}

std::string InitOwner(const InitScript& script) {
  auto parts = Split(script.path, '/');
  return parts.size() > 1 ? parts[1] : "";
}

std::vector<std::string> InitFetchPaths(const InitScript& script) {
  std::vector<std::string> paths{InitBlobPath(InitOwner(script), script.sha256)};
  if (script.path != paths.front()) paths.push_back(script.path);
  return paths;
}

std::string GenerationToJson(const Generation& g) {
  ordered_json j;
  j["format"] = g.format;
  j["fec"] = g.fec;
  j["number"] = g.number;
  j["parent"] = g.parent;
  j["created"] = FormatTime(g.created);
  j["expires"] = FormatTime(g.expires);
  if (g.offline) j["offline"] = true;  // absent: online (every generation before the field)
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
  if (!g.forced.empty()) {
    j["forced"] = ordered_json::array();
    for (const auto& f : g.forced)
      j["forced"].push_back({{"configuration", f.configuration}, {"wanted", f.wanted}, {"found", f.found}});
  }
  if (!g.persist.paths.empty())
    j["persist"] = {{"paths", g.persist.paths}, {"interval", g.persist.interval}};
  return j.dump(2) + "\n";
}

Result<Generation> ParseGeneration(std::string_view json) {
  Generation g;
  try {
    auto j = ordered_json::parse(json);
    if (!AllNumbersIntegers(j)) return Fail(ErrorCode::kCorrupt, "generation has a number that is not an integer");
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
    if (j.contains("offline")) {
      if (!j["offline"].is_boolean()) return Fail(ErrorCode::kCorrupt, "generation offline must be true or false");
      g.offline = j["offline"].get<bool>();
    }
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
    if (j.contains("forced"))
      for (const auto& f : j.at("forced"))
        g.forced.push_back({f.at("configuration").get<std::string>(), f.at("wanted").get<std::string>(),
                            f.at("found").get<std::string>()});
    if (j.contains("persist")) {
      g.persist.paths = j.at("persist").at("paths").get<std::vector<std::string>>();
      g.persist.interval = j.at("persist").at("interval").get<int64_t>();
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
    WHARF_TRY(ValidatePackageRef(g.packages[i], g.fec));
    if (i > 0 && !(g.packages[i - 1].name < g.packages[i].name))
      return Fail(ErrorCode::kCorrupt, "generation lists package " + g.packages[i].name +
                                           " twice or out of order");
  }
  for (size_t i = 0; i < g.init.size(); ++i) {
    const InitScript& script = g.init[i];
    WHARF_TRY(ValidateInitName(script.name));
    if (!IsSha256Hex(script.sha256)) return Fail(ErrorCode::kCorrupt, "init script " + script.name + ": bad sha256");
    auto parts = Split(script.path, '/');
    bool owned = parts.size() == 4 && parts[0] == "fecs" && (parts[1] == g.fec || parts[1] == "global");
    bool by_content = owned && parts[2] == "init-sha256" && parts[3] == script.sha256;
    bool by_name = owned && parts[2] == "init" && ValidateInitName(parts[3]).has_value();  // the old shape
    if (!by_content && !by_name)
      return Fail(ErrorCode::kUnsafe, "init script " + script.name + ": path \"" + script.path +
                                          "\" is not fecs/<this FEC or global>/init-sha256/<its sha256>");
    if (script.size > (64u << 20)) return Fail(ErrorCode::kCorrupt, "init script " + script.name + " is over 64 MiB");
    if (script.timeout < 1 || script.timeout > 86400)
      return Fail(ErrorCode::kCorrupt, "init script " + script.name + ": timeout must be 1 to 86400 s");
    if (i > 0 && !(g.init[i - 1].name < script.name))
      return Fail(ErrorCode::kCorrupt, "init script " + script.name + " is listed twice or out of order");
  }
  WHARF_TRY(CheckPrefixesApart(g.packages));
  return ValidatePersist(g.persist, g.packages);
}

bool IsConfiguration(const PackageRef& ref) { return !ref.index.starts_with("software/"); }

std::vector<std::string> ConfigurationsRead(std::string_view package,
                                            const std::optional<std::vector<std::string>>& declared,
                                            const std::vector<ConfigurationMatches>& configurations) {
  std::vector<std::string> read;
  for (const auto& config : configurations) {
    std::string_view name = std::string_view(config.configuration).substr(0, config.configuration.find('@'));
    bool reads = declared ? std::find(declared->begin(), declared->end(), name) != declared->end()
                          : std::any_of(config.matches.begin(), config.matches.end(),
                                        [&](const auto& m) { return m.first == package; });
    if (reads) read.push_back(config.configuration);
  }
  std::sort(read.begin(), read.end());
  return read;
}

std::vector<ForcedMatch> ConfigurationMismatches(const std::vector<PackageRef>& packages,
                                                 const std::vector<ConfigurationMatches>& declared) {
  std::vector<ForcedMatch> mismatches;
  for (const auto& config : declared)
    for (const auto& [name, version] : config.matches) {
      auto it = std::find_if(packages.begin(), packages.end(),
                             [&](const PackageRef& p) { return p.name == name; });
      if (it != packages.end() && it->version == version) continue;
      mismatches.push_back({config.configuration, name + "@" + version,
                            it == packages.end() ? "" : it->name + "@" + it->version});
    }
  return mismatches;
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
                                   const AcceptedFloor& floor, int64_t now, Medium medium) {
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
  bool expired = acceptance.effective_now >= candidate.expires;
  // Expiry bounds how long someone who controls the network can hold a FEC on an old,
  // validly signed generation (a freeze or a replay). A medium attached to the FEC has no
  // network between: an offline generation read from it runs past its expiry, never below
  // the floor (checked above). Over the network the same bytes expire like any other.
  if (expired && candidate.offline && medium == Medium::kLocal) {
    acceptance.expired_offline = true;
    return acceptance;
  }
  if (expired)
    return Fail(ErrorCode::kRejected,
                std::string(fec) + ": generation " + std::to_string(candidate.number) +
                    " expired at " + FormatTime(candidate.expires) +
                    (acceptance.clock_behind ? " (this clock is behind; judged by the newest "
                                               "accepted generation's time)"
                                             : "") +
                    (candidate.offline ? " (an offline generation runs past its expiry only from a file:// store)"
                                       : "") +
                    "; run `wharf refresh " + std::string(fec) + "` on the store");
  return acceptance;
}

std::string ExpiryNote(const Generation& active, int64_t now) {
  if (now < active.expires) return "";
  std::string number = std::to_string(active.number), at = FormatTime(active.expires);
  return active.offline ? "running expired offline generation " + number + " (expired at " + at + ")"
                        : "running generation " + number + ", expired at " + at;
}

}  // namespace wharf
