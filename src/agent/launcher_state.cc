// The launcher's file side: finding and verifying a delivered agent against its signed
// package index, and the launcher's record (agent.json). The process side is launcher.cc.
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "agent/launcher.h"
#include "agent/state.h"
#include "archive/package_index.h"
#include "base/file.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

std::string Named(const std::string& version) { return std::string(kAgentPackage) + "@" + version; }

// The package.json the generation pins, parsed: its bytes must have the pinned size and hash.
Result<PackageIndex> ReadPinnedIndex(const std::string& path, uint64_t size, const std::string& sha256,
                                     const std::string& what) {
  auto json = ReadFile(path, 256u << 20);
  if (!json) return Prefix(what, json.error());
  if (json->size() != size || Sha256Hex(*json) != sha256)
    return Fail(ErrorCode::kCorrupt, what + ": " + path + " differs from the package index the signed "
                                         "generation pins; the FEC's copy was altered: remove the package's "
                                         "folder and its .package.json so that a sync installs it again, or "
                                         "assign another " + kAgentPackage + " version");
  auto index = ParsePackageIndex(*json);
  if (!index) return Prefix(what + ": " + path, index.error());
  return index;
}

// The entry `rel` ("bin/wharf-agent") of the package, checked against the index: a file,
// executable, and the bytes in the content folder hashed again. nullopt when the index has
// no such entry.
Result<std::optional<FileEntry>> VerifyEntry(const PackageIndex& index, const std::string& folder,
                                             const std::string& rel, const std::string& what) {
  std::string entry_path = index.prefix.substr(1) + "/" + rel;
  auto it = std::find_if(index.files.begin(), index.files.end(),
                         [&](const FileEntry& f) { return f.path == entry_path; });
  if (it == index.files.end()) return std::optional<FileEntry>();
  if (it->type != EntryType::kFile || (it->mode & 0111) == 0)
    return Fail(ErrorCode::kCorrupt, what + ": " + rel + " is not an executable file in the package; "
                                         "pack the agent's binary with its mode 0755 and publish it again");
  std::string path = JoinPath(folder, rel);
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 0111) == 0)
    return Fail(ErrorCode::kCorrupt, what + ": " + path + " is missing or not an executable file; the FEC's "
                                         "copy was altered: remove " + folder + " so that a sync installs it again");
  auto digest = Sha256File(path);
  if (!digest) return Prefix(what, digest.error());
  if (digest->size != it->size || digest->sha256 != it->sha256)
    return Fail(ErrorCode::kCorrupt, what + ": " + path + " differs from its signed package index (sha256 " +
                                         digest->sha256.substr(0, 12) + ", signed " + it->sha256.substr(0, 12) +
                                         "); the FEC's copy was altered: remove " + folder +
                                         " so that a sync installs it again, or assign another version");
  return std::optional<FileEntry>(*it);
}

Result<DeliveredAgent> Verify(const std::string& folder, const std::string& index_path, uint64_t index_size,
                              const std::string& index_sha256, const std::string& version) {
  std::string what = "agent " + Named(version);
  auto index = ReadPinnedIndex(index_path, index_size, index_sha256, what);
  if (!index) return std::unexpected(index.error());
  // Issue 14: the package's architecture is matched against the FEC's here, before any
  // byte of the binary is trusted to run.
  auto agent = VerifyEntry(*index, folder, kAgentBinary, what);
  if (!agent) return std::unexpected(agent.error());
  if (!*agent)
    return Fail(ErrorCode::kNotFound, what + ": the package has no " + std::string(kAgentBinary) +
                                          "; pack the agent's tree (bin/wharf-agent, optionally "
                                          "bin/wharf-procserv) and publish it again");
  auto procserv = VerifyEntry(*index, folder, kProcservBinary, what);
  if (!procserv) return std::unexpected(procserv.error());
  DeliveredAgent delivered;
  delivered.version = version;
  delivered.path = JoinPath(folder, kAgentBinary);
  delivered.sha256 = (*agent)->sha256;
  delivered.size = (*agent)->size;
  if (*procserv) delivered.procserv = JoinPath(folder, kProcservBinary);
  delivered.index = index_path;
  delivered.index_size = index_size;
  delivered.index_sha256 = index_sha256;
  delivered.entry = (*agent)->path;
  return delivered;
}

const PackageRef* AgentRef(const Generation& generation) {
  for (const auto& ref : generation.packages)
    if (ref.name == kAgentPackage) return &ref;
  return nullptr;
}

nlohmann::ordered_json DeliveredToJson(const DeliveredAgent& a) {
  return {{"version", a.version}, {"path", a.path}, {"sha256", a.sha256}, {"size", a.size},
          {"procserv", a.procserv}, {"index", a.index}, {"index_size", a.index_size},
          {"index_sha256", a.index_sha256}, {"entry", a.entry}};
}

DeliveredAgent DeliveredFromJson(const nlohmann::json& j) {
  DeliveredAgent a;
  a.version = j.value("version", "");
  a.path = j.value("path", "");
  a.sha256 = j.value("sha256", "");
  a.size = j.value("size", uint64_t{0});
  a.procserv = j.value("procserv", "");
  a.index = j.value("index", "");
  a.index_size = j.value("index_size", uint64_t{0});
  a.index_sha256 = j.value("index_sha256", "");
  a.entry = j.value("entry", "");
  return a;
}

}  // namespace

Result<std::optional<DeliveredAgent>> FindDeliveredAgent(const Layout& layout, const Generation& generation) {
  const PackageRef* ref = AgentRef(generation);
  if (!ref) return std::optional<DeliveredAgent>();
  auto agent = Verify(layout.package(*ref), layout.package_index(*ref), ref->index_size, ref->index_sha256,
                      ref->version);
  if (!agent) return Prefix("generation " + std::to_string(generation.number), agent.error());
  return std::optional<DeliveredAgent>(std::move(*agent));
}

Status VerifyDeliveredAgent(const DeliveredAgent& agent) {
  // The content folder is the binary's grandparent: <folder>/bin/wharf-agent.
  std::string folder = Dirname(Dirname(agent.path));
  auto again = Verify(folder, agent.index, agent.index_size, agent.index_sha256, agent.version);
  if (!again) return std::unexpected(again.error());
  if (again->sha256 != agent.sha256 || again->path != agent.path)
    return Fail(ErrorCode::kCorrupt, "agent " + Named(agent.version) + ": " + agent.path +
                                         " is no longer the binary that was verified; sync again");
  return {};
}

Result<std::string> NamedAgentSha256(const Layout& layout, const Generation& generation) {
  const PackageRef* ref = AgentRef(generation);
  if (!ref) return std::string();
  std::string what = "agent " + Named(ref->version);
  auto index = ReadPinnedIndex(layout.package_index(*ref), ref->index_size, ref->index_sha256, what);
  if (!index) return std::unexpected(index.error());
  std::string entry_path = index->prefix.substr(1) + "/" + kAgentBinary;
  for (const auto& f : index->files)
    if (f.path == entry_path && f.type == EntryType::kFile) return f.sha256;
  return Fail(ErrorCode::kNotFound, what + ": the package has no " + std::string(kAgentBinary));
}

Result<bool> ShouldSwitchAgent(const Layout& layout, const Generation& applied) {
  auto named = NamedAgentSha256(layout, applied);
  if (!named) return std::unexpected(named.error());
  if (named->empty()) return false;
  const char* running = std::getenv(kAgentSha256Env);
  if (running && *named == running) return false;
  LauncherState state = ReadLauncherState(layout);
  for (const auto& r : state.refused)
    if (r.sha256 == *named) return false;
  return true;
}

std::string LauncherStatePath(const Layout& layout) { return JoinPath(layout.base(), "agent.json"); }

LauncherState ReadLauncherState(const Layout& layout) {
  LauncherState state;
  auto text = ReadFile(LauncherStatePath(layout), 1 << 20);
  if (!text) return state;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object()) return state;
  try {
    if (j.contains("current") && j["current"].is_object()) {
      const auto& c = j["current"];
      AgentChoice choice;
      choice.version = c.value("version", "");
      choice.path = c.value("path", "");
      choice.sha256 = c.value("sha256", "");
      choice.boot = c.value("boot", false);
      if (c.contains("delivered") && c["delivered"].is_object()) choice.delivered = DeliveredFromJson(c["delivered"]);
      state.current = std::move(choice);
    }
    for (const auto& g : j.value("good", nlohmann::json::array())) state.good.push_back(DeliveredFromJson(g));
    for (const auto& r : j.value("refused", nlohmann::json::array()))
      state.refused.push_back({r.value("sha256", ""), r.value("version", ""), r.value("why", ""),
                               r.value("time", int64_t{0})});
    state.named_sha256 = j.value("named_sha256", "");
    state.named_version = j.value("named_version", "");
    state.note = j.value("note", "");
  } catch (const nlohmann::json::exception&) {
    return LauncherState{};  // a damaged record: start over (the boot binary is always there)
  }
  return state;
}

Status WriteLauncherState(const Layout& layout, const LauncherState& state) {
  nlohmann::ordered_json j;
  if (state.current) {
    nlohmann::ordered_json c = {{"version", state.current->version}, {"path", state.current->path},
                                {"sha256", state.current->sha256}, {"boot", state.current->boot}};
    if (state.current->delivered) c["delivered"] = DeliveredToJson(*state.current->delivered);
    j["current"] = c;
  }
  j["good"] = nlohmann::ordered_json::array();
  for (const auto& g : state.good) j["good"].push_back(DeliveredToJson(g));
  j["refused"] = nlohmann::ordered_json::array();
  for (const auto& r : state.refused)
    j["refused"].push_back(nlohmann::ordered_json{{"sha256", r.sha256}, {"version", r.version}, {"why", r.why}, {"time", r.time}});
  j["named_sha256"] = state.named_sha256;
  j["named_version"] = state.named_version;
  j["note"] = state.note;
  WHARF_TRY(MakeDirs(layout.base()));
  return WriteFileAtomic(LauncherStatePath(layout), j.dump(2) + "\n");
}

std::string LauncherReport(const Layout& layout) {
  LauncherState state = ReadLauncherState(layout);
  std::string running = !state.current ? std::string("nothing")
                        : state.current->boot ? "the boot binary " + state.current->path
                                              : Named(state.current->version);
  if (!state.named_sha256.empty()) {
    for (const auto& r : state.refused)
      if (r.sha256 == state.named_sha256)
        return "agent " + Named(r.version) + " refused: " + r.why + "; running " + running;
  }
  if (!state.note.empty()) return state.note + "; running " + running;
  return "";
}

}  // namespace wharf
