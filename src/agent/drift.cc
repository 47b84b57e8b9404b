#include "agent/drift.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <thread>

#include "crypto/sha256.h"

namespace wharf {
namespace {

std::string Octal(uint32_t mode) {
  char text[16];
  std::snprintf(text, sizeof text, "%04o", mode);
  return text;
}

const char* ObservedName(Observed::Type type) {
  switch (type) {
    case Observed::Type::kFile: return "file";
    case Observed::Type::kDirectory: return "folder";
    case Observed::Type::kSymlink: return "link";
    case Observed::Type::kOther: return "special file";
  }
  return "?";
}

const char* IndexTypeName(EntryType type) {
  switch (type) {
    case EntryType::kFile: return "file";
    case EntryType::kDirectory: return "folder";
    case EntryType::kSymlink: return "link";
  }
  return "?";
}

Observed::Type ObservedType(EntryType type) {
  switch (type) {
    case EntryType::kFile: return Observed::Type::kFile;
    case EntryType::kDirectory: return Observed::Type::kDirectory;
    case EntryType::kSymlink: return Observed::Type::kSymlink;
  }
  return Observed::Type::kOther;
}

// The index entry's path inside the package folder: "opt/demo/bin/x" of "/opt/demo" is "bin/x".
std::string RelativeOf(const PackageIndex& index, const std::string& path) {
  size_t strip = index.prefix.size() - 1;  // the prefix without its leading "/"
  return path.size() <= strip ? "" : path.substr(strip + 1);
}

std::string FecPath(const std::string& prefix, const std::string& rel) {
  return rel.empty() ? prefix : JoinPath(prefix, rel);
}

// Sleeps as long as reading `done` bytes since `start` ran ahead of the budget.
void Throttle(const VerifyBudget& budget, std::chrono::steady_clock::time_point start, uint64_t done) {
  if (budget.bytes_per_second == 0) return;
  auto due = start + std::chrono::microseconds(done * 1000000 / budget.bytes_per_second);
  if (due > std::chrono::steady_clock::now()) std::this_thread::sleep_until(due);
}

Status Walk(const std::string& folder, const std::string& rel, ObservedTree& tree, std::vector<std::string>& files) {
  std::string path = rel.empty() ? folder : JoinPath(folder, rel);
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return IoError("stat", path);
  Observed& o = tree[rel];
  o.mode = st.st_mode & 07777;
  if (S_ISREG(st.st_mode)) {
    o.type = Observed::Type::kFile;
    o.size = static_cast<uint64_t>(st.st_size);
    files.push_back(rel);
  } else if (S_ISLNK(st.st_mode)) {
    o.type = Observed::Type::kSymlink;
    auto target = ReadLink(path);
    if (!target) return std::unexpected(target.error());
    o.link = *target;
  } else if (S_ISDIR(st.st_mode)) {
    o.type = Observed::Type::kDirectory;
    auto names = ListDir(path);
    if (!names) return std::unexpected(names.error());
    for (const auto& name : *names) WHARF_TRY(Walk(folder, rel.empty() ? name : rel + "/" + name, tree, files));
  } else {
    o.type = Observed::Type::kOther;
  }
  return {};
}

// A package's stamp file: one line, the TreeStamp.
Result<std::string> ReadStamp(const Layout& layout, const PackageRef& ref) {
  auto text = ReadFile(StampPath(layout, ref), 256);
  if (!text) return std::unexpected(text.error());
  while (!text->empty() && text->back() == '\n') text->pop_back();
  return *text;
}

}  // namespace

const char* DriftKindName(DriftKind kind) {
  switch (kind) {
    case DriftKind::kIndex: return "index";
    case DriftKind::kMissing: return "missing";
    case DriftKind::kExtra: return "extra";
    case DriftKind::kType: return "type";
    case DriftKind::kSize: return "size";
    case DriftKind::kContent: return "content";
    case DriftKind::kMode: return "mode";
    case DriftKind::kLink: return "link";
  }
  return "?";
}

uint32_t InstalledMode(const FileEntry& entry) {
  switch (entry.type) {
    case EntryType::kFile: return entry.mode & 0555;
    case EntryType::kDirectory: return (entry.mode & 0555) | 0500;
    case EntryType::kSymlink: return 0777;
  }
  return 0;
}

std::vector<Drift> CompareTree(const PackageRef& ref, const PackageIndex& index, const ObservedTree& tree,
                               bool hashed) {
  std::vector<Drift> drifts;
  std::string package = ref.name + "@" + ref.version;
  auto note = [&](const std::string& rel, DriftKind kind, std::string want, std::string have) {
    drifts.push_back({package, FecPath(index.prefix, rel), rel, kind, std::move(want), std::move(have)});
  };
  std::set<std::string> known;
  for (const auto& e : index.files) {
    std::string rel = RelativeOf(index, e.path);
    known.insert(rel);
    auto found = tree.find(rel);
    if (found == tree.end()) {
      note(rel, DriftKind::kMissing, IndexTypeName(e.type), "nothing");
      continue;
    }
    const Observed& o = found->second;
    if (o.type != ObservedType(e.type)) {
      note(rel, DriftKind::kType, IndexTypeName(e.type), ObservedName(o.type));
      continue;
    }
    switch (e.type) {
      case EntryType::kFile:
        if (o.size != e.size)
          note(rel, DriftKind::kSize, std::to_string(e.size) + " bytes", std::to_string(o.size) + " bytes");
        else if (hashed && o.sha256 != e.sha256)
          note(rel, DriftKind::kContent, "sha256 " + e.sha256.substr(0, 16), "sha256 " + o.sha256.substr(0, 16));
        break;
      case EntryType::kSymlink:
        if (o.link != e.link) note(rel, DriftKind::kLink, "-> " + e.link, "-> " + o.link);
        break;
      case EntryType::kDirectory: break;
    }
    if (e.type != EntryType::kSymlink && o.mode != InstalledMode(e))
      note(rel, DriftKind::kMode, Octal(InstalledMode(e)), Octal(o.mode));
  }
  // The folder itself is the prefix: an index without an entry for it still has it.
  known.insert("");
  for (const auto& [rel, o] : tree) {
    if (known.count(rel)) continue;
    // Below an extra folder, only the folder is named: removing it removes the rest.
    std::string parent = Dirname(rel);
    if (rel.find('/') != std::string::npos && !known.count(parent) && tree.count(parent)) continue;
    note(rel, DriftKind::kExtra, "nothing", ObservedName(o.type));
  }
  std::stable_sort(drifts.begin(), drifts.end(), [](const Drift& a, const Drift& b) { return a.rel < b.rel; });
  return drifts;
}

Result<ObservedTree> ScanTree(const std::string& folder, bool hash, const VerifyBudget& budget, uint64_t* bytes) {
  ObservedTree tree;
  std::vector<std::string> files;
  WHARF_TRY(Walk(folder, "", tree, files));
  if (!hash) return tree;
  auto start = std::chrono::steady_clock::now();
  uint64_t done = 0;
  for (const auto& rel : files) {
    std::string path = JoinPath(folder, rel);
    Sha256 sha;
    WHARF_TRY(ReadChunks(path, [&](const char* data, size_t size) -> Status {
      sha.Update(data, size);
      done += size;
      Throttle(budget, start, done);
      if (budget.stop && budget.stop())
        return Fail(ErrorCode::kTimedOut, folder + ": verify stopped before its end");
      return {};
    }));
    tree[rel].sha256 = sha.HexDigest();
  }
  if (bytes) *bytes += done;
  return tree;
}

Result<PackageIndex> ReadInstalledIndex(const Layout& layout, const PackageRef& ref) {
  std::string path = layout.package_index(ref);
  auto json = ReadFile(path, ref.index_size);
  if (!json) return std::unexpected(json.error());
  if (json->size() != ref.index_size || Sha256Hex(*json) != ref.index_sha256)
    return Fail(ErrorCode::kCorrupt, path + ": not the package.json the generation pins (sha256 differs)");
  auto index = ParsePackageIndex(*json);
  if (!index) return Prefix(path, index.error());
  return index;
}

Result<std::vector<Drift>> VerifyPackage(const Layout& layout, const PackageRef& ref, const VerifyBudget& budget,
                                         uint64_t* bytes, size_t* entries) {
  std::string package = ref.name + "@" + ref.version;
  std::string folder = layout.package(ref);
  auto index = ReadInstalledIndex(layout, ref);
  if (!index) {
    return std::vector<Drift>{{package, layout.package_index(ref), "", DriftKind::kIndex,
                               "sha256 " + ref.index_sha256.substr(0, 16), index.error().message}};
  }
  struct stat st;
  if (::lstat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return std::vector<Drift>{{package, ref.prefix, "", DriftKind::kMissing, "folder " + folder, "nothing"}};
  auto tree = ScanTree(folder, true, budget, bytes);
  if (!tree) return std::unexpected(tree.error());
  if (entries) *entries += tree->size();
  return CompareTree(ref, *index, *tree);
}

Result<DriftReport> VerifyInstalled(const Layout& layout, const Generation& generation, const VerifyBudget& budget) {
  DriftReport report;
  report.generation = generation.number;
  for (const auto& ref : generation.packages) {
    auto drifts = VerifyPackage(layout, ref, budget, &report.bytes, &report.entries);
    if (!drifts) return std::unexpected(drifts.error());
    ++report.packages;
    for (auto& d : *drifts) report.drifts.push_back(std::move(d));
  }
  return report;
}

std::string DriftSummary(const std::vector<Drift>& drifts) {
  if (drifts.empty()) return "";
  std::vector<std::string> packages;
  for (const auto& d : drifts)
    if (std::find(packages.begin(), packages.end(), d.package) == packages.end()) packages.push_back(d.package);
  std::string line = "drift: " + std::to_string(drifts.size()) + (drifts.size() == 1 ? " difference in " : " differences in ");
  for (size_t i = 0; i < packages.size(); ++i) line += (i ? ", " : "") + packages[i];
  line += "; first: ";
  line += drifts.front().path;
  line += ": ";
  line += DriftKindName(drifts.front().kind);
  line += " (run `wharf-agent verify`)";
  return line;
}

// ---- repair

namespace {

// Writes each fetched file beside its place (".<name>.wharf-repair") and renames it over:
// a reader sees the damaged file or the right one, never a part.
class RepairSink : public EntrySink {
 public:
  RepairSink(std::string folder, const PackageIndex& index) : folder_(std::move(folder)), index_(index) {}
  ~RepairSink() override {
    if (!temp_.empty()) ::unlink(temp_.c_str());
  }
  Status Directory(const FileEntry&) override { return {}; }
  Status Symlink(const FileEntry&) override { return {}; }
  Status BeginFile(const FileEntry& e) override {
    target_ = JoinPath(folder_, RelativeOf(index_, e.path));
    temp_ = JoinPath(Dirname(target_), "." + Basename(target_) + ".wharf-repair");
    mode_ = InstalledMode(e);
    ::unlink(temp_.c_str());
    fd_ = UniqueFd(::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd_.valid()) return IoError("create", temp_);
    return {};
  }
  Status FileData(const void* data, size_t size) override { return WriteAll(fd_.get(), data, size, temp_); }
  Status EndFile() override {
    if (::fchmod(fd_.get(), mode_) != 0) return IoError("chmod", temp_);
    if (::fsync(fd_.get()) != 0) return IoError("sync", temp_);
    fd_ = UniqueFd();
    WHARF_TRY(RenameDurable(temp_, target_));
    temp_.clear();
    ++files;
    return {};
  }
  size_t files = 0;

 private:
  std::string folder_;
  const PackageIndex& index_;
  std::string target_, temp_;
  uint32_t mode_ = 0;
  UniqueFd fd_;
};

// Every folder of the index that is a folder now gets u+w (the agent may be no root), and
// back its installed mode afterwards, deepest first: the tree is read-only again.
Status SetFolderModes(const std::string& folder, const PackageIndex& index, bool writable) {
  std::vector<std::pair<std::string, uint32_t>> folders;
  for (const auto& e : index.files)
    if (e.type == EntryType::kDirectory) folders.push_back({RelativeOf(index, e.path), InstalledMode(e)});
  if (std::none_of(folders.begin(), folders.end(), [](const auto& f) { return f.first.empty(); }))
    folders.push_back({"", 0555});
  std::sort(folders.begin(), folders.end(), [&](const auto& a, const auto& b) {
    return writable ? a.first.size() < b.first.size() : a.first.size() > b.first.size();
  });
  for (const auto& [rel, mode] : folders) {
    std::string path = rel.empty() ? folder : JoinPath(folder, rel);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    if (::chmod(path.c_str(), writable ? (st.st_mode & 07777) | 0700 : mode) != 0) return IoError("chmod", path);
  }
  return {};
}

}  // namespace

Result<RepairStats> RepairPackage(const Layout& layout, Mirrors& mirrors, const PackageRef& ref,
                                  const std::vector<Drift>& drifts) {
  RepairStats stats;
  if (drifts.empty()) return stats;
  std::string folder = layout.package(ref);
  bool whole = std::any_of(drifts.begin(), drifts.end(), [](const Drift& d) {
    return d.kind == DriftKind::kIndex || (d.kind == DriftKind::kMissing && d.rel.empty());
  });
  std::string index_json;
  if (whole) {
    // The index (or the whole folder) is gone or wrong: fetched again, checked against the
    // generation; a folder left without its index is installed afresh.
    bool patched = false;
    auto json = FetchPackageIndex(layout, mirrors, ref, {}, patched);
    if (!json) return std::unexpected(json.error());
    index_json = std::move(*json);
    auto index = ParsePackageIndex(index_json);
    if (!index) return Prefix(ref.index, index.error());
    WHARF_TRY(RemoveTree(layout.package_index(ref)));
    WHARF_TRY(WriteFileAtomic(layout.package_index(ref), index_json, 0444));
    if (!IsDirectory(folder)) {
      auto installed = InstallPackage(layout, mirrors, ref, *index, index_json, {});
      if (!installed) return std::unexpected(installed.error());
      stats.reinstalled = true;
      stats.bytes_fetched = installed->fetched_bytes;
      WHARF_TRY(WriteStamp(layout, ref));
      return stats;
    }
    // The folder is there: what in it differs from the index now in place.
    auto again = VerifyPackage(layout, ref);
    if (!again) return std::unexpected(again.error());
    return RepairPackage(layout, mirrors, ref, *again);
  }
  auto index = ReadInstalledIndex(layout, ref);
  if (!index) return std::unexpected(index.error());
  std::map<std::string, size_t> by_rel;
  for (size_t i = 0; i < index->files.size(); ++i) by_rel[RelativeOf(*index, index->files[i].path)] = i;

  WHARF_TRY(SetFolderModes(folder, *index, true));
  struct ReadOnlyAgain {  // also when a step fails
    const std::string& folder;
    const PackageIndex& index;
    bool done = false;
    ~ReadOnlyAgain() {
      if (!done) (void)SetFolderModes(folder, index, false);
    }
  } read_only_again{folder, *index};

  // 1. What should not be there, or is of the wrong type, goes (a folder with what is in it).
  std::set<std::string> remake;
  for (const auto& d : drifts) {
    if (d.kind != DriftKind::kExtra && d.kind != DriftKind::kType) continue;
    std::string path = JoinPath(folder, d.rel);
    if (PathExists(path)) {
      // Its folder may be read-only (an extra folder inside an extra folder is gone already).
      ::chmod(Dirname(path).c_str(), 0700);
      WHARF_TRY(RemoveTree(path));
    }
    ++stats.removed;
    if (d.kind == DriftKind::kType) remake.insert(d.rel);
  }
  for (const auto& d : drifts)
    if (d.kind == DriftKind::kMissing || d.kind == DriftKind::kLink) remake.insert(d.rel);
  // 2. Folders and links, parents first (index order).
  std::vector<size_t> files;
  for (size_t i = 0; i < index->files.size(); ++i) {
    const FileEntry& e = index->files[i];
    std::string rel = RelativeOf(*index, e.path);
    bool content = std::any_of(drifts.begin(), drifts.end(), [&](const Drift& d) {
      return d.rel == rel && (d.kind == DriftKind::kSize || d.kind == DriftKind::kContent);
    });
    if (!remake.count(rel) && !content) continue;
    std::string path = JoinPath(folder, rel);
    switch (e.type) {
      case EntryType::kDirectory:
        if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return IoError("create folder", path);
        ++stats.folders;
        break;
      case EntryType::kSymlink:
        WHARF_TRY(SymlinkAtomic(e.link, path));  // beside, then renamed over
        ++stats.links;
        break;
      case EntryType::kFile:
        if (e.size == 0) {
          std::string temp = JoinPath(Dirname(path), "." + Basename(path) + ".wharf-repair");
          WHARF_TRY(RemoveTree(temp));
          WHARF_TRY(WriteFileAtomic(path, "", InstalledMode(e)));
          ++stats.files;
        } else {
          files.push_back(i);
        }
        break;
    }
  }
  // 3. The damaged files, from the frames that hold them only.
  RepairSink sink(folder, *index);
  auto fetched = FetchFiles(layout, mirrors, ref, *index, files, sink);
  if (!fetched) return Prefix(ref.name + "@" + ref.version, fetched.error());
  stats.files += sink.files;
  stats.bytes_fetched += *fetched;
  // 4. Modes of files (folders get theirs when made read-only again).
  for (const auto& d : drifts) {
    if (d.kind != DriftKind::kMode) continue;
    auto i = by_rel.find(d.rel);
    if (i == by_rel.end() || index->files[i->second].type != EntryType::kFile) continue;
    std::string path = JoinPath(folder, d.rel);
    if (::fchmodat(AT_FDCWD, path.c_str(), InstalledMode(index->files[i->second]), AT_SYMLINK_NOFOLLOW) != 0 &&
        ::chmod(path.c_str(), InstalledMode(index->files[i->second])) != 0)
      return IoError("chmod", path);
    ++stats.modes;
  }
  for (const auto& d : drifts)
    if (d.kind == DriftKind::kMode && by_rel.count(d.rel) &&
        index->files[by_rel[d.rel]].type == EntryType::kDirectory)
      ++stats.modes;
  read_only_again.done = true;  // a chmod changes the mode, so before the stamp
  WHARF_TRY(SetFolderModes(folder, *index, false));
  UniqueFd dir(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.valid()) ::syncfs(dir.get());
  WHARF_TRY(WriteStamp(layout, ref));
  return stats;
}

Result<std::string> TreeStamp(const std::string& folder) {
  Sha256 sha;
  std::vector<std::string> pending{""};
  while (!pending.empty()) {
    std::string rel = pending.back();
    pending.pop_back();
    std::string path = rel.empty() ? folder : JoinPath(folder, rel);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return IoError("stat", path);
    std::string line = rel + '\0' + std::to_string(st.st_mode) + ' ' + std::to_string(st.st_size) + ' ' +
                       std::to_string(st.st_ino) + ' ' + std::to_string(st.st_mtim.tv_sec) + '.' +
                       std::to_string(st.st_mtim.tv_nsec) + '\n';
    sha.Update(line);
    if (S_ISDIR(st.st_mode)) {
      auto names = ListDir(path);
      if (!names) return std::unexpected(names.error());
      for (auto it = names->rbegin(); it != names->rend(); ++it) pending.push_back(rel.empty() ? *it : rel + "/" + *it);
    }
  }
  return sha.HexDigest();
}

std::string StampPath(const Layout& layout, const PackageRef& ref) { return layout.package(ref) + ".stamp"; }

Status WriteStamp(const Layout& layout, const PackageRef& ref) {
  auto stamp = TreeStamp(layout.package(ref));
  if (!stamp) return std::unexpected(stamp.error());
  return WriteFileAtomic(StampPath(layout, ref), *stamp + "\n", 0444);
}

bool StampMatches(const Layout& layout, const PackageRef& ref) {
  auto recorded = ReadStamp(layout, ref);
  if (!recorded || recorded->empty()) return false;
  auto now = TreeStamp(layout.package(ref));
  return now && *now == *recorded;
}

}  // namespace wharf
