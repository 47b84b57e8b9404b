#include "store/store.h"

#include <algorithm>
#include <map>

#include <unistd.h>

#include "archive/delta.h"
#include "archive/names.h"
#include "archive/reader.h"
#include "base/strings.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

constexpr uint64_t kMaxIndexBytes = 256u << 20;
constexpr uint64_t kMaxGenerationBytes = 16u << 20;

PackageHome HomeOf(const PackageIndex& index) {
  return {StoreArea(index.configuration, index.fec), index.name};
}

std::string KindText(const PackageHome& home) {
  if (!home.configuration()) return "software";
  return home.area == "configuration" ? "shared configuration" : "configuration of " + Split(home.area, '/')[1];
}

}  // namespace

Result<Store> Store::Open(const std::string& root, bool create) {
  std::string abs = AbsolutePath(root);
  if (create) {
    for (const char* sub : {"software", "configuration", "fecs/global/init", ".wharf"})
      WHARF_TRY(MakeDirs(JoinPath(abs, sub)));
  }
  if (!IsDirectory(JoinPath(abs, "software")) || !IsDirectory(JoinPath(abs, "fecs")))
    return Fail(ErrorCode::kNotFound, abs + " is not a wharf store (no software/ and fecs/); "
                                            "check --store, or publish once to create one");
  WHARF_TRY(MakeDirs(JoinPath(abs, ".wharf")));
  return Store(abs);
}

Result<FileLock> Store::Lock() const { return FileLock::Acquire(JoinPath(root_, ".wharf/lock")); }

Result<PublishOutcome> Store::Publish(const std::string& archive_path,
                                      const std::string& index_path, bool dry_run, int delta_bases) {
  auto index_json = ReadFile(index_path, kMaxIndexBytes);
  if (!index_json) return std::unexpected(index_json.error());
  auto index = ParsePackageIndex(*index_json);
  if (!index) return Prefix(index_path, index.error());
  if (Basename(archive_path) != index->archive)
    return Fail(ErrorCode::kInvalidArgument, archive_path + ": its package.json describes " +
                                                 index->archive + "; publish that file");
  WHARF_TRY(CheckNameFree(*index));
  std::string dest = JoinPath(root_, StoreFolder(*index));
  std::string package_dir = Dirname(dest);
  WHARF_TRY(MakeDirs(package_dir));
  // Copy first, then check the copy: what becomes visible is exactly what was checked.
  std::string staging = TempSibling(dest);
  WHARF_TRY(MakeDirs(staging));
  auto cleanup = [&] { (void)RemoveTree(staging); };
  std::string staged_archive = JoinPath(staging, index->archive);
  Status staged = CopyFile(archive_path, staged_archive);
  if (staged) staged = WriteFileAtomic(JoinPath(staging, "package.json"), *index_json);
  if (staged) staged = WriteFileAtomic(JoinPath(staging, "package.json.zst"), CompressIndex(*index_json));
  if (staged) staged = VerifyArchive(staged_archive, *index);
  if (staged && !dry_run && !PathExists(dest))
    staged = WriteDeltas(staging, staged_archive, *index, *index_json,
                         RecentVersions(HomeOf(*index), index->version, delta_bases), 19);
  if (!staged) {
    cleanup();
    return Prefix("publish " + index->name + "@" + index->version, staged.error());
  }
  auto lock = Lock();
  if (!lock) {
    cleanup();
    return std::unexpected(lock.error());
  }
  WHARF_TRY(RemoveStaleTemps(package_dir));  // a publisher killed mid-copy left these
  // Again under the lock: a concurrent publish of the same name as another kind of
  // package may have made it visible since the check above.
  if (auto free = CheckNameFree(*index); !free) {
    cleanup();
    (void)::rmdir(package_dir.c_str());  // made above for the staging; empty unless published
    return std::unexpected(free.error());
  }
  if (PathExists(dest)) {
    cleanup();
    return CompareWithPublished(dest, *index, *index_json);
  }
  if (dry_run) {
    cleanup();
    return PublishOutcome{std::move(*index), false};
  }
  WHARF_TRY(SyncPath(staging));
  if (auto renamed = RenameDurable(staging, dest); !renamed) {
    cleanup();
    return std::unexpected(renamed.error());
  }
  return PublishOutcome{std::move(*index), false};
}

Result<PublishOutcome> Store::CompareWithPublished(const std::string& dest,
                                                   const PackageIndex& index,
                                                   const std::string& index_json) {
  auto published = ReadFile(JoinPath(dest, "package.json"), kMaxIndexBytes);
  if (!published) return std::unexpected(published.error());
  // The index pins the archive's sha256, so equal indexes mean equal archives.
  if (*published != index_json)
    return Fail(ErrorCode::kAlreadyExists,
                index.name + "@" + index.version +
                    " is already published with other content; a published version is "
                    "immutable: publish under a new version");
  return PublishOutcome{index, true};
}

Status Store::CheckNameFree(const PackageIndex& index) const {
  PackageHome mine = HomeOf(index);
  auto homes = Packages();
  if (!homes) return std::unexpected(homes.error());
  for (const auto& home : *homes) {
    if (home.name != index.name || home.area == mine.area || !HasVersions(home)) continue;
    // Two FECs may each have their own configuration of one name.
    if (home.configuration() && mine.configuration() && home.area != "configuration" &&
        mine.area != "configuration")
      continue;
    return Fail(ErrorCode::kAlreadyExists,
                index.name + " is already published as " + KindText(home) + " (" + home.folder() +
                    "); one name is one package: pick another name for this " + KindText(mine));
  }
  return {};
}

Result<PackageIndex> Store::ReadIndex(const PackageHome& home, const std::string& version) const {
  WHARF_TRY(ValidatePackageName(home.name));
  WHARF_TRY(ValidateVersion(version));
  auto json = ReadFile(JoinPath(root_, home.folder() + "/" + version + "/package.json"), kMaxIndexBytes);
  if (!json) {
    if (json.error().code == ErrorCode::kNotFound)
      return Fail(ErrorCode::kNotFound, home.name + "@" + version +
                                            " is not published in this store; `wharf publish` it "
                                            "first");
    return std::unexpected(json.error());
  }
  auto index = ParsePackageIndex(*json);
  if (!index) return Prefix(home.name + "@" + version + " package.json", index.error());
  return index;
}

Result<std::vector<PackageHome>> Store::Packages() const {
  std::vector<std::string> areas = {"software", "configuration"};
  auto fecs = Fecs();
  if (!fecs) return std::unexpected(fecs.error());
  for (const auto& fec : *fecs)
    if (IsDirectory(JoinPath(FecDir(fec), "configuration"))) areas.push_back("fecs/" + fec + "/configuration");
  std::vector<PackageHome> homes;
  for (const auto& area : areas) {
    auto names = ListDir(JoinPath(root_, area));
    if (!names) {
      if (names.error().code == ErrorCode::kNotFound) continue;
      return std::unexpected(names.error());
    }
    for (const auto& name : *names)
      if (name[0] != '.' && IsDirectory(JoinPath(root_, area + "/" + name)) && ValidatePackageName(name))
        homes.push_back({area, name});
  }
  return homes;
}

Result<PackageHome> Store::FindPackage(const std::string& fec, const std::string& name) const {
  WHARF_TRY(ValidatePackageName(name));
  std::vector<std::string> areas = {"software", "configuration"};
  if (!fec.empty()) {
    WHARF_TRY(ValidateFecName(fec));
    areas.push_back("fecs/" + fec + "/configuration");
  }
  for (const auto& area : areas)
    if (HasVersions({area, name})) return PackageHome{area, name};
  return Fail(ErrorCode::kNotFound, name + " is not published in this store" +
                                        (fec.empty() ? "" : " (nor as a configuration of " + fec + ")") +
                                        "; `wharf publish` it first, or see `wharf list --packages`");
}

Result<PackageRef> Store::ResolvePackage(const std::string& fec, const std::string& name,
                                         const std::string& version) const {
  auto home = FindPackage(fec, name);
  if (!home) return std::unexpected(home.error());
  auto index = ReadIndex(*home, version);
  if (!index) return std::unexpected(index.error());
  std::string folder = home->folder() + "/" + version + "/";
  auto digest = Sha256File(JoinPath(root_, folder + "package.json"));
  if (!digest) return std::unexpected(digest.error());
  PackageRef ref;
  ref.name = name;
  ref.version = version;
  ref.prefix = index->prefix;
  ref.archive = folder + index->archive;
  ref.archive_size = index->archive_size;
  ref.archive_sha256 = index->archive_sha256;
  ref.index = folder + "package.json";
  ref.index_size = digest->size;
  ref.index_sha256 = digest->sha256;
  return ref;
}

// A package folder counts once a version is in it: a publisher staging its first version
// (a hidden temp folder) or one refused has not taken the name.
bool Store::HasVersions(const PackageHome& home) const {
  auto versions = Versions(home);
  return versions && !versions->empty();
}

Result<std::vector<std::string>> Store::Versions(const PackageHome& home) const {
  WHARF_TRY(ValidatePackageName(home.name));
  auto names = ListDir(JoinPath(root_, home.folder()));
  if (!names) return std::unexpected(names.error());
  std::vector<std::string> versions;
  for (auto& v : *names)
    if (v[0] != '.') versions.push_back(v);
  return versions;
}

std::vector<std::pair<std::string, PackageIndex>> Store::RecentVersions(const PackageHome& home,
                                                                        const std::string& except,
                                                                        int count) const {
  std::vector<std::pair<int64_t, std::string>> by_time;
  for (const auto& version : Versions(home).value_or(std::vector<std::string>{})) {
    if (version == except) continue;
    auto when = FileModifiedTime(JoinPath(root_, home.folder() + "/" + version + "/package.json"));
    if (when) by_time.push_back({*when, version});
  }
  std::sort(by_time.rbegin(), by_time.rend());
  std::vector<std::pair<std::string, PackageIndex>> recent;
  for (const auto& [when, version] : by_time) {
    if (static_cast<int>(recent.size()) >= count) break;
    auto index = ReadIndex(home, version);
    if (!index) continue;
    std::string archive = JoinPath(root_, home.folder() + "/" + version + "/" + index->archive);
    recent.push_back({archive, std::move(*index)});
  }
  return recent;
}

std::string Store::FecDir(const std::string& fec) const { return JoinPath(root_, "fecs/" + fec); }

Result<std::optional<StoredGeneration>> Store::CurrentGeneration(const std::string& fec) const {
  WHARF_TRY(ValidateFecName(fec));
  auto json = ReadFile(JoinPath(FecDir(fec), "generation.json"), kMaxGenerationBytes);
  if (!json) {
    if (json.error().code == ErrorCode::kNotFound) return std::optional<StoredGeneration>();
    return std::unexpected(json.error());
  }
  auto generation = ParseGeneration(*json);
  if (!generation) return Prefix(fec + " generation.json", generation.error());
  return StoredGeneration{std::move(*generation), std::move(*json)};
}

Result<std::vector<Generation>> Store::History(const std::string& fec) const {
  WHARF_TRY(ValidateFecName(fec));
  std::string dir = JoinPath(FecDir(fec), "generations");
  auto names = ListDir(dir);
  if (!names) return std::unexpected(names.error());
  std::vector<Generation> history;
  for (const auto& name : *names) {
    if (name.size() < 6 || name.substr(name.size() - 5) != ".json" || name[0] == '.') continue;
    auto json = ReadFile(JoinPath(dir, name), kMaxGenerationBytes);
    if (!json) return std::unexpected(json.error());
    auto generation = ParseGeneration(*json);
    if (!generation) return Prefix(JoinPath(dir, name), generation.error());
    history.push_back(std::move(*generation));
  }
  std::sort(history.begin(), history.end(),
            [](const Generation& a, const Generation& b) { return a.number < b.number; });
  return history;
}

Result<std::vector<std::string>> Store::Fecs() const {
  auto names = ListDir(JoinPath(root_, "fecs"));
  if (!names) return std::unexpected(names.error());
  std::vector<std::string> fecs;
  for (auto& name : *names)
    if (name != "global" && name[0] != '.' && ValidateFecName(name)) fecs.push_back(name);
  return fecs;
}

Status Store::WriteGeneration(const Generation& generation, const std::string& json,
                              const PrivateKey& key) {
  auto signature = key.Sign(json);
  if (!signature) return std::unexpected(signature.error());
  std::string dir = FecDir(generation.fec);
  std::string numbered = JoinPath(dir, "generations/" + std::to_string(generation.number) + ".json");
  WHARF_TRY(MakeDirs(Dirname(numbered)));
  // The numbered files are written first: an agent reading generation.json finds the
  // signature of that number already there.
  WHARF_TRY(WriteFileAtomic(numbered + ".sig", *signature));
  WHARF_TRY(WriteFileAtomic(numbered, json));
  WHARF_TRY(WriteFileAtomic(JoinPath(dir, "generation.json.sig"), *signature));
  WHARF_TRY(WriteFileAtomic(JoinPath(dir, "generation.json"), json));
  return DeriveView(generation);
}

// fecs/<FEC>/software/ and configuration/ hold links to what the FEC runs; the FEC's own
// configuration packages (folders in configuration/) are never touched here.
Status Store::DeriveView(const Generation& generation) {
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> views;  // folder -> links
  views["software"];
  views["configuration"];
  for (const auto& p : generation.packages) {
    std::string folder = IsConfiguration(p) ? "configuration" : "software";
    views[folder].push_back({p.name + ".tar.zst", p.archive});
    views[folder].push_back({p.name + ".package.json", p.index});
  }
  for (const auto& [folder, links] : views) {
    std::string view = JoinPath(FecDir(generation.fec), folder);
    WHARF_TRY(MakeDirs(view));
    std::vector<std::string> wanted;
    for (const auto& [link, target] : links) {
      WHARF_TRY(SymlinkAtomic(RelativePath(view, JoinPath(root_, target)), JoinPath(view, link)));
      wanted.push_back(link);
    }
    auto present = ListDir(view);
    if (!present) return std::unexpected(present.error());
    for (const auto& name : *present)
      if (std::find(wanted.begin(), wanted.end(), name) == wanted.end() &&
          ReadLink(JoinPath(view, name)).has_value())
        WHARF_TRY(RemoveTree(JoinPath(view, name)));
  }
  return {};
}

}  // namespace wharf
