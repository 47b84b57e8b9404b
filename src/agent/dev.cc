#include "agent/dev.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <functional>
#include <nlohmann/json.hpp>

#include "agent/abort_point.h"
#include "agent/agent.h"
#include "agent/state.h"
#include "archive/names.h"
#include "archive/package_index.h"
#include "archive/reader.h"
#include "base/file.h"
#include "base/strings.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

using nlohmann::ordered_json;
constexpr std::string_view kDevVersion = "dev";
constexpr const char* kUntil = "until the next generation or wharf-agent drop-dev ";

// A dev version stands in for a package of the running generation: there must be one.
Result<ActiveGeneration> RequireActive(const Layout& layout) {
  auto active = ReadActive(layout);
  if (!active) return std::unexpected(active.error());
  if (!*active)
    return Fail(ErrorCode::kNotFound, layout.root() + ": no generation is active here, and a dev version "
                                                      "goes into the running one: run `wharf-agent sync` first");
  return std::move(**active);
}

std::string Names(const DevList& list) {
  std::string names;
  for (const auto& p : list.packages) names += (names.empty() ? "" : ", ") + p.name;
  return names.empty() ? "there are none" : names;
}

const PackageRef* WithPrefix(const std::vector<PackageRef>& refs, const std::string& prefix) {
  auto it = std::find_if(refs.begin(), refs.end(), [&](const PackageRef& r) { return r.prefix == prefix; });
  return it == refs.end() ? nullptr : &*it;
}

// Where the prefix link of `ref` points: relative, so that a FEC folder works like "/".
std::string LinkTarget(const Layout& layout, const PackageRef& ref) {
  return RelativePath(Dirname(layout.prefix_link(ref)), JoinPath(layout.current(), ref.name));
}

// Before anything changes: every prefix link the new profile needs is wharf's or free.
Status CheckPrefixLinks(const Layout& layout, const std::vector<PackageRef>& before,
                        const std::vector<PackageRef>& after) {
  for (const auto& ref : after) {
    std::string link = layout.prefix_link(ref);
    auto existing = ReadLink(link);
    if (existing && *existing == LinkTarget(layout, ref)) continue;
    bool ours = existing && WithPrefix(before, ref.prefix) != nullptr;
    if (PathExists(link) && !ours)
      return Fail(ErrorCode::kAlreadyExists, link + " exists and is not wharf's link; move it away so that " +
                                                 ref.name + " can install there");
  }
  return {};
}

// Made before the switch: until then a new link resolves to nothing, as in a sync.
Status MakePrefixLinks(const Layout& layout, const std::vector<PackageRef>& after) {
  for (const auto& ref : after) {
    std::string link = layout.prefix_link(ref);
    std::string target = LinkTarget(layout, ref);
    if (ReadLink(link).value_or("") == target) continue;
    WHARF_TRY(MakeDirs(Dirname(link)));
    WHARF_TRY(SymlinkAtomic(target, link));
    AbortPoint("dev-prefix-linked:" + ref.name);
  }
  return {};
}

// Removed after the switch: the old profile needed them until then.
Status RemoveDroppedLinks(const Layout& layout, const std::vector<PackageRef>& before,
                          const std::vector<PackageRef>& after) {
  for (const auto& old : before) {
    if (WithPrefix(after, old.prefix)) continue;
    std::string link = layout.prefix_link(old);
    if (ReadLink(link).value_or("") == LinkTarget(layout, old)) WHARF_TRY(RemoveTree(link));
  }
  return {};
}

// A name no profile has: one more than the highest k of the dev profiles on disk.
std::string NextDevProfile(const Layout& layout, uint64_t generation) {
  uint64_t k = 0;
  for (const auto& name : ListDir(layout.profiles()).value_or(std::vector<std::string>{}))
    if (auto dev = Layout::ParseDevProfileName(name)) k = std::max(k, dev->second);
  return Layout::DevProfileName(generation, k + 1);
}

Status WriteDevProfile(const Layout& layout, const std::string& name, const ActiveGeneration& active,
                       const std::vector<PackageRef>& refs, const DevList& list) {
  std::string staging = JoinPath(layout.profiles(), "." + name + ".building");
  WHARF_TRY(RemoveTree(staging));
  WHARF_TRY(MakeDirs(staging));
  for (const auto& ref : refs)
    WHARF_TRY(SymlinkAtomic("../../packages/" + ref.name + "/" + Layout::PackageLeaf(ref), JoinPath(staging, ref.name)));
  // The generation's own bytes: a sync of the same generation finds nothing new and keeps
  // the dev versions; ReadActive and the floor work as on any profile.
  auto signature = ReadFile(JoinPath(layout.current(), ".generation.json.sig"), 1 << 16);
  if (!signature) return std::unexpected(signature.error());
  WHARF_TRY(WriteFileAtomic(JoinPath(staging, ".generation.json.sig"), *signature));
  WHARF_TRY(WriteFileAtomic(JoinPath(staging, ".generation.json"), active.json));
  WHARF_TRY(WriteFileAtomic(JoinPath(staging, ".dev.json"), DevListToJson(list)));
  AbortPoint("dev-profile-staged");
  WHARF_TRY(RenameDurable(staging, layout.profile(name)));
  AbortPoint("dev-profile-written");
  return {};
}

// Makes the profile of `after` current: a new dev profile, or the generation's own when no
// dev version is left. Returns the profile's name.
Result<std::string> Switch(const Layout& layout, const ActiveGeneration& active, const DevList& before,
                           const DevList& after) {
  const Generation& g = active.generation;
  auto old_refs = ProfilePackages(g, before);
  auto new_refs = ProfilePackages(g, after);
  std::string name = std::to_string(g.number);
  if (after.packages.empty()) {
    if (!IsDirectory(layout.profile(g.number)))
      return Fail(ErrorCode::kNotFound, layout.profile(g.number) + " is missing, so there is no profile of generation " +
                                            name + " to go back to; the next generation replaces the dev versions");
  } else {
    name = NextDevProfile(layout, g.number);
    WHARF_TRY(WriteDevProfile(layout, name, active, new_refs, after));
  }
  WHARF_TRY(MakePrefixLinks(layout, new_refs));
  AbortPoint("dev-before-switch");
  WHARF_TRY(SymlinkAtomic("profiles/" + name, layout.current()));
  AbortPoint("dev-switched");
  WHARF_TRY(RemoveDroppedLinks(layout, old_refs, new_refs));
  AbortPoint("dev-prefixes-cleaned");
  // Every generation profile stays (their number is sync's business): only the dev profile
  // left behind and packages nothing names go.
  WHARF_TRY(CollectGarbage(layout, 0));
  return name;
}

// Unpacks the checked archive as packages/<name>/dev-<sha8>, the way a sync installs a
// package (hidden staging folder, index beside it, one rename). False when already there.
Result<bool> Unpack(const Layout& layout, const PackageRef& ref, const PackageIndex& index, const DevUpload& upload) {
  std::string final_dir = layout.package(ref);
  if (IsDirectory(final_dir)) {
    if (ReadFile(layout.package_index(ref), kMaxDevIndexBytes).value_or("") == upload.index_json) return false;
    return Fail(ErrorCode::kAlreadyExists, final_dir + " holds other bytes with the same sha256 prefix; "
                                                        "`wharf-agent drop-dev " + ref.name + "` and deploy again");
  }
  std::string staging = JoinPath(Dirname(final_dir), "." + Basename(final_dir) + ".unpacking");
  WHARF_TRY(RemoveTree(staging));
  WHARF_TRY(MakeDirs(Dirname(staging)));
  if (auto extracted = ExtractArchive(upload.archive_path, index, staging); !extracted)
    return Prefix(ref.name + "@dev", extracted.error());
  AbortPoint("dev-unpacked:" + ref.name);
  WHARF_TRY(WriteFileAtomic(layout.package_index(ref), upload.index_json, 0444));
  AbortPoint("dev-index-saved:" + ref.name);
  WHARF_TRY(RenameDurable(staging, final_dir));
  AbortPoint("dev-installed:" + ref.name);
  return true;
}

// The upload's own claims, before the FEC is touched: the package named, version dev, and
// an archive of exactly the size and sha256 its package.json gives.
Result<PackageIndex> CheckUpload(const std::string& name, const DevUpload& upload) {
  auto index = ParsePackageIndex(upload.index_json);
  if (!index) return Prefix(name + "@dev: package.json", index.error());
  if (index->name != name)
    return Fail(ErrorCode::kInvalidArgument, "the package.json sent is " + index->name + "'s, not " + name +
                                                 "'s (--name); send the package you name");
  if (index->version != kDevVersion)
    return Fail(ErrorCode::kInvalidArgument,
                name + "@" + index->version + ": a dev install takes version dev (as `wharf dev-deploy` packs it); "
                                              "a release goes through `wharf publish` and `wharf assign`");
  auto digest = Sha256File(upload.archive_path);
  if (!digest) return std::unexpected(digest.error());
  if (digest->size != index->archive_size || digest->sha256 != index->archive_sha256)
    return Fail(ErrorCode::kCorrupt, name + "@dev: the archive's size or sha256 differs from its package.json "
                                            "(damaged on the way?); deploy again");
  return index;
}

Result<uint64_t> ParseCount(std::string_view text) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size())
    return Fail(ErrorCode::kInvalidArgument, "");
  return value;
}

// read(2) until `size` bytes or the end; returns how many came.
Result<size_t> ReadUpTo(int fd, char* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::read(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("read", "the dev stream on stdin");
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

constexpr size_t kMaxHeaderBytes = 100;
constexpr const char* kNotAStream = "not a dev stream: it must start with the line `wharf-dev 1 <index bytes> "
                                    "<archive bytes>` (docs/formats.md); send it with `wharf dev-deploy`";

Result<std::pair<uint64_t, uint64_t>> ReadHeader(int fd) {
  std::string line;
  for (;;) {
    char c;
    auto got = ReadUpTo(fd, &c, 1);
    if (!got) return std::unexpected(got.error());
    if (*got == 0) {
      if (line.empty())
        return Fail(ErrorCode::kInvalidArgument, "nothing came on stdin: install-dev reads the stream "
                                                 "`wharf dev-deploy` sends");
      return Fail(ErrorCode::kInvalidArgument, kNotAStream);
    }
    if (c == '\n') break;
    line += c;
    if (line.size() > kMaxHeaderBytes) return Fail(ErrorCode::kInvalidArgument, kNotAStream);
  }
  auto fields = Split(line, ' ');
  if (fields.size() != 4 || fields[0] != "wharf-dev") return Fail(ErrorCode::kInvalidArgument, kNotAStream);
  auto format = ParseCount(fields[1]);
  auto index = ParseCount(fields[2]);
  auto archive = ParseCount(fields[3]);
  if (!format || !index || !archive) return Fail(ErrorCode::kInvalidArgument, kNotAStream);
  if (*format != kDevStreamFormat)
    return Fail(ErrorCode::kInvalidArgument, "dev stream format " + fields[1] + ": this wharf-agent reads format " +
                                                 std::to_string(kDevStreamFormat) + "; use the same wharf release on both sides");
  if (*index == 0 || *index > kMaxDevIndexBytes)
    return Fail(ErrorCode::kInvalidArgument, "the dev stream announces a package.json of " + fields[2] +
                                                 " bytes; refusing anything empty or above " + HumanBytes(kMaxDevIndexBytes));
  if (*archive > kMaxDevArchiveBytes)
    return Fail(ErrorCode::kInvalidArgument, "the dev stream announces an archive of " + fields[3] +
                                                 " bytes; refusing anything above " + HumanBytes(kMaxDevArchiveBytes));
  return std::pair{*index, *archive};
}

Status ReceiveArchive(int fd, const std::string& path, uint64_t size) {
  UniqueFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out.valid()) return IoError("create", path);
  std::string buffer(1 << 16, '\0');
  uint64_t done = 0;
  while (done < size) {
    auto got = ReadUpTo(fd, buffer.data(), static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - done)));
    if (!got) return std::unexpected(got.error());
    if (*got == 0)
      return Fail(ErrorCode::kCorrupt, "the dev stream ended after " + std::to_string(done) + " of the " +
                                           std::to_string(size) + " archive bytes (cut off?); deploy again");
    WHARF_TRY(WriteAll(out.get(), buffer.data(), *got, path));
    done += *got;
  }
  char extra;
  auto trailing = ReadUpTo(fd, &extra, 1);
  if (!trailing) return std::unexpected(trailing.error());
  if (*trailing > 0)
    return Fail(ErrorCode::kCorrupt, "bytes follow the archive in the dev stream: not what `wharf dev-deploy` "
                                     "sends; refusing it");
  return {};
}

ordered_json DevPackageJson(const DevPackage& p) {
  return {{"name", p.name}, {"version", kDevVersion}, {"sha256", p.sha256}, {"size", p.archive_size},
          {"prefix", p.prefix}, {"installed", FormatTime(p.installed)},
          {"replaces", p.replaces ? ordered_json(*p.replaces) : ordered_json(nullptr)}};
}

}  // namespace

const DevPackage* DevList::Find(std::string_view name) const {
  auto it = std::find_if(packages.begin(), packages.end(), [&](const DevPackage& p) { return p.name == name; });
  return it == packages.end() ? nullptr : &*it;
}

std::string DevListToJson(const DevList& list) {
  ordered_json j{{"format", 1}, {"generation", list.generation}, {"packages", ordered_json::array()}};
  for (const auto& p : list.packages) j["packages"].push_back(DevPackageJson(p));
  return j.dump(2) + "\n";
}

Result<DevList> ParseDevList(std::string_view json) {
  auto bad = [](const std::string& what) {
    return Fail(ErrorCode::kCorrupt, "not a dev list wharf wrote (" + what +
                                         "); the next generation replaces it, or repair the link `current`");
  };
  DevList list;
  try {
    auto j = ordered_json::parse(json);
    if (j.at("format").get<int>() != 1) return bad("format");
    list.generation = j.at("generation").get<uint64_t>();
    for (const auto& e : j.at("packages")) {
      DevPackage p;
      p.name = e.at("name").get<std::string>();
      p.sha256 = e.at("sha256").get<std::string>();
      p.archive_size = e.at("size").get<uint64_t>();
      p.prefix = e.at("prefix").get<std::string>();
      auto installed = ParseTime(e.at("installed").get<std::string>());
      if (!e.at("replaces").is_null()) p.replaces = e.at("replaces").get<std::string>();
      if (!ValidatePackageName(p.name) || !ValidatePrefix(p.prefix) || !IsSha256Hex(p.sha256) || !installed ||
          (p.replaces && !ValidateVersion(*p.replaces)))
        return bad("package " + p.name);
      p.installed = *installed;
      if (!list.packages.empty() && list.packages.back().name >= p.name) return bad("packages not sorted by name");
      list.packages.push_back(std::move(p));
    }
  } catch (const nlohmann::json::exception& e) {
    return bad(e.what());
  }
  return list;
}

Result<DevList> ReadDevList(const Layout& layout) {
  auto json = ReadFile(layout.dev_list(), 1 << 20);
  if (!json) {
    if (json.error().code == ErrorCode::kNotFound) return DevList{};
    return std::unexpected(json.error());
  }
  auto list = ParseDevList(*json);
  if (!list) return Prefix(layout.dev_list(), list.error());
  return list;
}

PackageRef DevRef(const DevPackage& package) {
  PackageRef ref;
  ref.name = package.name;
  ref.version = std::string(kDevVersion);
  ref.prefix = package.prefix;
  ref.archive_size = package.archive_size;
  ref.archive_sha256 = package.sha256;
  return ref;
}

std::vector<PackageRef> ProfilePackages(const Generation& generation, const DevList& dev) {
  std::vector<PackageRef> refs = generation.packages;
  for (const auto& p : dev.packages) {
    auto it = std::find_if(refs.begin(), refs.end(), [&](const PackageRef& r) { return r.name == p.name; });
    if (it != refs.end()) {
      *it = DevRef(p);
    } else {
      refs.push_back(DevRef(p));
    }
  }
  std::sort(refs.begin(), refs.end(), [](const PackageRef& a, const PackageRef& b) { return a.name < b.name; });
  return refs;
}

Result<DevList> PlanDevInstall(const Generation& generation, const DevList& current, DevPackage package) {
  WHARF_TRY(ValidatePackageName(package.name));
  if (auto valid = ValidatePrefix(package.prefix); !valid) return Prefix("--prefix", valid.error());
  const std::string& fec = generation.fec;
  auto assigned = std::find_if(generation.packages.begin(), generation.packages.end(),
                               [&](const PackageRef& r) { return r.name == package.name; });
  package.replaces.reset();
  if (assigned != generation.packages.end()) {
    // Its prefix link and services belong to the generation: the dev version goes there.
    if (assigned->prefix != package.prefix)
      return Fail(ErrorCode::kInvalidArgument,
                  fec + ": generation " + std::to_string(generation.number) + " has " + package.name + " at " +
                      assigned->prefix + ", not " + package.prefix + "; deploy its dev version with --prefix " +
                      assigned->prefix);
    package.replaces = assigned->version;
  }
  for (const auto& ref : ProfilePackages(generation, current))
    if (ref.name != package.name && PrefixesOverlap(ref.prefix, package.prefix))
      return Fail(ErrorCode::kInvalidArgument, fec + ": " + package.name + " at " + package.prefix + " overlaps " +
                                                   ref.name + " at " + ref.prefix + "; give it a prefix of its own");
  DevList next = current;
  next.generation = generation.number;
  std::erase_if(next.packages, [&](const DevPackage& p) { return p.name == package.name; });
  next.packages.push_back(std::move(package));
  std::sort(next.packages.begin(), next.packages.end(),
            [](const DevPackage& a, const DevPackage& b) { return a.name < b.name; });
  return next;
}

Result<DevList> PlanDevDrop(const Generation& generation, const DevList& current, const std::string& name) {
  if (!current.Find(name))
    return Fail(ErrorCode::kNotFound, generation.fec + ": " + name + " is not a dev version here (dev versions: " +
                                          Names(current) + "); nothing to drop");
  DevList next = current;
  std::erase_if(next.packages, [&](const DevPackage& p) { return p.name == name; });
  return next;
}

namespace {

// What install-dev and drop-dev share: under the agent's lock (leftovers of a cut run
// removed first), the running generation, its dev list now and as `plan` makes it, and the
// prefix links that change checked.
struct DevChange {
  FileLock lock;
  ActiveGeneration active;
  DevList before;
  DevList after;
};

Result<DevChange> LockAndPlan(const Layout& layout, bool dry_run,
                              const std::function<Result<DevList>(const Generation&, const DevList&)>& plan) {
  WHARF_TRY(RequireActive(layout));  // before the lock file: a FEC that never synced stays untouched
  auto lock = FileLock::Acquire(layout.lock());
  if (!lock) return std::unexpected(lock.error());
  AbortPoint("dev-locked");
  if (!dry_run) WHARF_TRY(RecoverLeftovers(layout));
  auto active = RequireActive(layout);
  if (!active) return std::unexpected(active.error());
  auto before = ReadDevList(layout);
  if (!before) return std::unexpected(before.error());
  auto after = plan(active->generation, *before);
  if (!after) return std::unexpected(after.error());
  const Generation& g = active->generation;
  WHARF_TRY(CheckPrefixLinks(layout, ProfilePackages(g, *before), ProfilePackages(g, *after)));
  return DevChange{std::move(*lock), std::move(*active), std::move(*before), std::move(*after)};
}

}  // namespace

Result<DevOutcome> InstallDev(const Layout& layout, const std::string& name, const DevUpload& upload, int64_t now,
                              bool dry_run) {
  WHARF_TRY(ValidatePackageName(name));
  auto index = CheckUpload(name, upload);
  if (!index) return std::unexpected(index.error());
  auto change = LockAndPlan(layout, dry_run, [&](const Generation& g, const DevList& before) {
    return PlanDevInstall(g, before, {name, index->archive_sha256, index->archive_size, index->prefix, now, {}});
  });
  if (!change) return std::unexpected(change.error());
  const Generation& g = change->active.generation;
  DevOutcome outcome{g.fec, g.number, *change->after.Find(name), "", false, index->files.size()};
  if (dry_run) {
    if (auto verified = VerifyArchive(upload.archive_path, *index); !verified)
      return Prefix(name + "@dev", verified.error());
    outcome.profile = NextDevProfile(layout, g.number);
    return outcome;
  }
  auto unpacked = Unpack(layout, DevRef(outcome.package), *index, upload);
  if (!unpacked) return std::unexpected(unpacked.error());
  outcome.unpacked = *unpacked;
  auto profile = Switch(layout, change->active, change->before, change->after);
  if (!profile) return std::unexpected(profile.error());
  outcome.profile = *profile;
  return outcome;
}

Result<DevOutcome> DropDev(const Layout& layout, const std::string& name, bool dry_run) {
  WHARF_TRY(ValidatePackageName(name));
  auto change = LockAndPlan(layout, dry_run, [&](const Generation& g, const DevList& before) {
    return PlanDevDrop(g, before, name);
  });
  if (!change) return std::unexpected(change.error());
  const Generation& g = change->active.generation;
  DevOutcome outcome{g.fec, g.number, *change->before.Find(name), "", false, 0};
  if (dry_run) {
    outcome.profile = change->after.packages.empty() ? std::to_string(g.number) : NextDevProfile(layout, g.number);
    return outcome;
  }
  auto profile = Switch(layout, change->active, change->before, change->after);
  if (!profile) return std::unexpected(profile.error());
  outcome.profile = *profile;
  return outcome;
}

std::string DevStreamHeader(uint64_t index_bytes, uint64_t archive_bytes) {
  return "wharf-dev " + std::to_string(kDevStreamFormat) + " " + std::to_string(index_bytes) + " " +
         std::to_string(archive_bytes) + "\n";
}

Result<DevUpload> ReceiveDevStream(int fd, const Layout& layout, const std::string& name) {
  WHARF_TRY(ValidatePackageName(name));
  WHARF_TRY(RequireActive(layout));
  auto sizes = ReadHeader(fd);
  if (!sizes) return std::unexpected(sizes.error());
  DevUpload upload;
  upload.index_json.resize(sizes->first);
  auto got = ReadUpTo(fd, upload.index_json.data(), upload.index_json.size());
  if (!got) return std::unexpected(got.error());
  if (*got < sizes->first)
    return Fail(ErrorCode::kCorrupt, "the dev stream ended after " + std::to_string(*got) + " of the " +
                                         std::to_string(sizes->first) + " bytes of package.json (cut off?); deploy again");
  // Received without the agent's lock (a slow upload must not hold up a sync), under a name
  // that leftover recovery leaves alone while this process lives.
  WHARF_TRY(MakeDirs(layout.tmp()));
  upload.archive_path = TempSibling(JoinPath(layout.tmp(), "dev-" + name + ".tar.zst"));
  if (auto received = ReceiveArchive(fd, upload.archive_path, sizes->second); !received) {
    (void)RemoveTree(upload.archive_path);
    return std::unexpected(received.error());
  }
  return upload;
}

std::vector<std::string> DevStatusLines(const Layout& layout) {
  auto list = ReadDevList(layout);
  if (!list) return {"DEV  the dev versions here cannot be read: " + list.error().message};
  std::vector<std::string> lines;
  for (const auto& p : list->packages)
    lines.push_back("DEV  " + p.name + "  " +
                    (p.replaces ? "replaces " + *p.replaces : "added (generation " + std::to_string(list->generation) +
                                                                  " does not have it)") +
                    " at " + p.prefix + " (installed " + FormatTime(p.installed) + ", sha256 " + p.sha256.substr(0, 8) +
                    "; " + kUntil + p.name + "; its services are not started)");
  return lines;
}

std::string DevStatusJson(const Layout& layout) {
  ordered_json out = ordered_json::array();
  auto list = ReadDevList(layout);
  if (!list) {
    out.push_back({{"error", list.error().message}});
    return out.dump();
  }
  for (const auto& p : list->packages) {
    auto j = DevPackageJson(p);
    j["generation"] = list->generation;
    out.push_back(std::move(j));
  }
  return out.dump();
}

}  // namespace wharf
