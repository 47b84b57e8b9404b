#include "archive/snapshot.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "archive/names.h"
#include "archive/archive_handles.h"
#include "archive/package_index.h"
#include "archive/utf8_locale.h"
#include "archive/zstd_handles.h"
#include "base/file.h"
#include "base/strings.h"

namespace wharf {
namespace {

std::string Relative(const std::string& absolute) { return absolute.substr(1); }

std::string ArchiveMessage(archive* a) { return archive_error_string(a) ? archive_error_string(a) : "?"; }

// A snapshot that cannot be read to its end: what a store refuses and a restore skips.
std::unexpected<Error> Damaged(const std::string& where, archive* a) {
  return Fail(ErrorCode::kCorrupt, where + ": the snapshot is cut or damaged (" + ArchiveMessage(a) +
                                       "); take a new one, or pick another with `wharf data restore`");
}

// Writing a snapshot failed: most often the disk under it is full.
std::unexpected<Error> NotWritten(const std::string& what, const std::string& out, archive* a) {
  return Fail(ErrorCode::kIo, out + ": cannot " + what + " the snapshot (" + ArchiveMessage(a) +
                                  "); check the free space under " + Dirname(out));
}

// Who holds a folder: its contents must be what this user could read and copy itself.
struct Holder {
  uid_t uid;
  gid_t gid;
};

// Whether `holder` could read the object `st` without wharf's help. Root reads all; the
// owner of a file may chmod it; everyone else goes by the group and other bits.
bool ReadableBy(const struct stat& st, const Holder& holder) {
  if (holder.uid == 0 || st.st_uid == holder.uid) return true;
  if (st.st_mode & S_IROTH) return true;
  if (!(st.st_mode & S_IRGRP)) return false;
  if (st.st_gid == holder.gid) return true;
  passwd pw{}, *found = nullptr;
  std::vector<char> buffer(16 << 10);
  if (::getpwuid_r(holder.uid, &pw, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) return false;
  int count = 64;
  std::vector<gid_t> groups(count);
  if (::getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) return false;
  groups.resize(count);
  return std::find(groups.begin(), groups.end(), st.st_gid) != groups.end();
}

// The entry `name` of the open folder `dir`, checked as the folder's holder would see it.
// A regular file or folder is opened without following links, and what was opened must be
// the object that was inspected (same device, inode and type): a name swapped for a link
// or another file between the two is refused, and the contents are read only through the
// descriptor. A file the holder could not read, or another user's file with more than one
// name (a hard link to someone else's file), is refused: it would leak into the snapshot.
struct Opened {
  struct stat st;
  UniqueFd fd;         // files and folders
  std::string target;  // links
};

Result<std::optional<Opened>> OpenEntry(int dir, const std::string& name, const std::string& disk_path,
                                        const Holder& holder) {
  Opened o;
  if (::fstatat(dir, name.c_str(), &o.st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return std::optional<Opened>();  // removed since the listing: live data
    return IoError("inspect", disk_path);
  }
  if (S_ISLNK(o.st.st_mode)) {
    auto target = ReadLinkAt(dir, name, Dirname(disk_path));
    if (!target) return std::unexpected(target.error());
    o.target = std::move(*target);
    return std::optional<Opened>(std::move(o));
  }
  if (!S_ISREG(o.st.st_mode) && !S_ISDIR(o.st.st_mode)) return std::optional<Opened>();  // sockets, fifos
  int flags = O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC | (S_ISDIR(o.st.st_mode) ? O_DIRECTORY : 0);
  o.fd = UniqueFd(::openat(dir, name.c_str(), flags));
  struct stat opened;
  if (!o.fd.valid() || ::fstat(o.fd.get(), &opened) != 0 || opened.st_dev != o.st.st_dev ||
      opened.st_ino != o.st.st_ino || (opened.st_mode & S_IFMT) != (o.st.st_mode & S_IFMT))
    return Fail(ErrorCode::kUnsafe, disk_path + " changed while the snapshot opened it (swapped for a link or "
                                                "another file?); refusing it, the next snapshot tries again");
  o.st = opened;
  if (!ReadableBy(o.st, holder))
    return Fail(ErrorCode::kUnsafe, disk_path + " is owned by uid " + std::to_string(o.st.st_uid) +
                                        " and the owner of its folder (uid " + std::to_string(holder.uid) +
                                        ") cannot read it; a snapshot takes only what the folder's owner could "
                                        "copy itself: chown it or move it out of the persistent folder");
  if (S_ISREG(o.st.st_mode) && o.st.st_nlink > 1 && o.st.st_uid != holder.uid && holder.uid != 0)
    return Fail(ErrorCode::kUnsafe, disk_path + " is uid " + std::to_string(o.st.st_uid) +
                                        "'s file hard-linked into uid " + std::to_string(holder.uid) +
                                        "'s folder; refusing it (copy it instead of linking it)");
  return std::optional<Opened>(std::move(o));
}

Status AddEntry(const std::string& disk_path, const std::string& path, const Opened& o, archive* tar,
                SnapshotStats& stats) {
  auto tar_error = [&] {
    return Fail(ErrorCode::kIo, disk_path + ": cannot add it to the snapshot (" + ArchiveMessage(tar) +
                                    "); check the free space under var/lib/wharf");
  };
  const struct stat& st = o.st;
  ArchiveEntry e(archive_entry_new());
  archive_entry_set_pathname(e.get(), path.c_str());
  archive_entry_set_perm(e.get(), st.st_mode & 07777);
  archive_entry_set_uid(e.get(), st.st_uid);
  archive_entry_set_gid(e.get(), st.st_gid);
  archive_entry_set_mtime(e.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  bool file = S_ISREG(st.st_mode);
  if (S_ISDIR(st.st_mode)) {
    archive_entry_set_filetype(e.get(), AE_IFDIR);
  } else if (S_ISLNK(st.st_mode)) {
    archive_entry_set_filetype(e.get(), AE_IFLNK);
    archive_entry_set_symlink(e.get(), o.target.c_str());
  } else {
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_size(e.get(), st.st_size);
  }
  if (archive_write_header(tar, e.get()) != ARCHIVE_OK) return tar_error();
  ++stats.entries;
  if (!file) return {};
  // Exactly the size the header declared: a file that grew is cut there, one that shrank
  // fails this snapshot rather than storing bytes that never were.
  char buffer[64 << 10];
  uint64_t left = st.st_size;
  while (left > 0) {
    ssize_t n = ::read(o.fd.get(), buffer, std::min<uint64_t>(left, sizeof buffer));
    if (n < 0) return IoError("read", disk_path);
    if (n == 0)
      return Fail(ErrorCode::kIo, disk_path + " shrank while the snapshot read it; the next snapshot "
                                              "tries again (make the writer replace it by rename)");
    if (archive_write_data(tar, buffer, n) != n) return tar_error();
    left -= n;
    stats.bytes += n;
  }
  return {};
}

// Every entry below the open folder `dir`, which `holder` owns, relative to it only.
Status Walk(int dir, const std::string& disk_dir, const std::string& path, const Holder& holder, archive* tar,
            SnapshotStats& stats) {
  auto names = ListDirAt(dir, disk_dir);
  if (!names) return std::unexpected(names.error());
  for (const auto& name : *names) {
    std::string disk_path = JoinPath(disk_dir, name), entry = path + "/" + name;
    if (!IsValidUtf8(entry) || !ValidateEntryPath(entry))
      return Fail(ErrorCode::kInvalidArgument, disk_path + ": the name is not plain UTF-8; rename it");
    auto opened = OpenEntry(dir, name, disk_path, holder);
    if (!opened) return std::unexpected(opened.error());
    if (!*opened) continue;
    WHARF_TRY(AddEntry(disk_path, entry, **opened, tar, stats));
    if (S_ISDIR((*opened)->st.st_mode))
      WHARF_TRY(Walk((*opened)->fd.get(), disk_path, entry, Holder{(*opened)->st.st_uid, (*opened)->st.st_gid}, tar,
                     stats));
  }
  return {};
}

// The folder `rel` (relative, "" for `base` itself) below the open folder `base`, one
// component at a time and never through a link: a service user who owns a folder on the
// way cannot send wharf elsewhere by making it a link. With `create`, missing folders are
// made (0755, the caller's). Missing without `create`: an invalid descriptor.
Result<UniqueFd> OpenFolderBeneath(int base, const std::string& rel, const std::string& where, bool create) {
  UniqueFd dir(::openat(base, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return IoError("open", where);
  std::string walked = where;
  for (const auto& part : Split(rel, '/')) {
    if (part.empty()) continue;
    walked = JoinPath(walked, part);
    if (create && ::mkdirat(dir.get(), part.c_str(), 0755) != 0 && errno != EEXIST) return IoError("create folder", walked);
    UniqueFd next(::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) {
      if (errno == ENOENT && !create) return UniqueFd();
      return Fail(ErrorCode::kUnsafe, walked + " is not a folder (a link?); persistent folders and the folders "
                                               "above them must be real folders, never links");
    }
    dir = std::move(next);
  }
  return dir;
}

// The declared folder an entry belongs to, or nullptr.
const std::string* Owner(const std::vector<std::string>& paths, const std::string& entry) {
  for (const auto& p : paths)
    if (IsUnderPrefix(entry, p)) return &p;
  return nullptr;
}

struct Entry {
  std::string path;
  EntryType type;
  std::string link;
};

// Every entry, checked, handed to `each` with the open archive to read data from.
Status ReadEntries(const std::string& archive_path, const std::vector<std::string>& paths,
                   const std::function<Status(const Entry&, archive_entry*, archive*)>& each) {
  ScopedUtf8Locale utf8;
  ArchiveReader tar(archive_read_new());
  archive_read_support_format_tar(tar.get());
  archive_read_support_filter_zstd(tar.get());
  if (archive_read_open_filename(tar.get(), archive_path.c_str(), 64 << 10) != ARCHIVE_OK)
    return Damaged(archive_path, tar.get());
  std::set<std::string> seen;
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(tar.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK)
      return Damaged(archive_path, tar.get());
    const char* name = archive_entry_pathname(e);
    Entry entry{name ? name : "", EntryType::kFile, ""};
    auto bad = [&](const std::string& why) {
      return Fail(ErrorCode::kUnsafe, archive_path + ": entry \"" + entry.path + "\" " + why +
                                          "; the snapshot is hostile or broken, it is not used");
    };
    // tar writes folders with a trailing slash.
    if (archive_entry_filetype(e) == AE_IFDIR && entry.path.size() > 1 && entry.path.back() == '/')
      entry.path.pop_back();
    if (!ValidateEntryPath(entry.path)) return bad("is not a normalised relative path");
    const std::string* owner = Owner(paths, entry.path);
    if (owner == nullptr) return bad("is outside the persistent folders");
    if (!seen.insert(entry.path).second) return bad("is there twice");
    switch (archive_entry_filetype(e)) {
      case AE_IFREG: break;
      case AE_IFDIR: entry.type = EntryType::kDirectory; break;
      case AE_IFLNK:
        entry.type = EntryType::kSymlink;
        entry.link = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
        if (!SymlinkStaysInside(entry.path, entry.link, *owner)) return bad("links outside its folder");
        break;
      default: return bad("is not a file, folder or link");
    }
    if (entry.path == Relative(*owner) && entry.type != EntryType::kDirectory)
      return bad("should be the folder itself");
    WHARF_TRY(each(entry, e, tar.get()));
  }
  return {};
}

Status ReadData(archive* tar, const std::string& where, const std::function<Status(const void*, size_t)>& sink) {
  for (;;) {
    const void* block;
    size_t size;
    la_int64_t offset;
    int r = archive_read_data_block(tar, &block, &size, &offset);
    if (r == ARCHIVE_EOF) return {};
    if (r != ARCHIVE_OK)
      return Damaged(where, tar);
    WHARF_TRY(sink(block, size));
  }
}

// Decodes the zstd stream only to count what it unpacks to, and refuses it past `max_data`:
// a frame that declares more is refused before a byte of it is decoded, any other stops
// at the limit. Bounded memory (one window of at most 16 MiB, 128 KiB of output reused).
// Run before libarchive reads the tar, which then never decodes more than the limit.
Status CheckDecodedSize(const std::string& archive_path, uint64_t max_data) {
  auto too_big = [&](const std::string& how) {
    return Fail(ErrorCode::kRejected, archive_path + ": the snapshot unpacks to " + how + " than the limit of " +
                                          HumanBytes(max_data) + " (--snapshot-max-data); persist less, or raise the limit");
  };
  auto fd = OpenRead(archive_path);
  if (!fd) return std::unexpected(fd.error());
  ZstdDctx dctx(ZSTD_createDCtx());
  if (!dctx) return Fail(ErrorCode::kIo, "out of memory for a zstd decoder; free memory and retry");
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, 24);
  std::vector<char> input(ZSTD_DStreamInSize()), output(ZSTD_DStreamOutSize());
  uint64_t decoded = 0;
  bool frame_start = true;
  ZSTD_inBuffer in{input.data(), 0, 0};
  for (;;) {
    if (in.pos == in.size) {
      ssize_t n = ::read(fd->get(), input.data(), input.size());
      if (n < 0) return IoError("read", archive_path);
      if (n == 0) break;
      in = {input.data(), static_cast<size_t>(n), 0};
    }
    if (frame_start) {
      unsigned long long declared =
          ZSTD_getFrameContentSize(static_cast<const char*>(in.src) + in.pos, in.size - in.pos);
      if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR &&
          declared > max_data - decoded)
        return too_big("more (its zstd frame says " + HumanBytes(declared) + ")");
    }
    ZSTD_outBuffer out{output.data(), output.size(), 0};
    size_t left = ZSTD_decompressStream(dctx.get(), &out, &in);
    if (ZSTD_isError(left))
      return Fail(ErrorCode::kCorrupt, archive_path + ": the snapshot is not valid zstd (" +
                                           ZSTD_getErrorName(left) + "); take a new one");
    decoded += out.pos;
    if (decoded > max_data) return too_big("more");
    frame_start = left == 0;
  }
  if (!frame_start)
    return Fail(ErrorCode::kCorrupt, archive_path + ": the snapshot's zstd stream is cut; take a new one");
  return {};
}

}  // namespace

bool PersistentPathEmpty(const std::string& root, const std::string& path) {
  std::string where = JoinPath(root, path);
  struct stat st;
  if (::lstat(where.c_str(), &st) != 0) return errno == ENOENT;
  if (!S_ISDIR(st.st_mode)) return false;  // a file or a link: never restored over
  auto names = ListDir(where);
  return names && names->empty();
}

Result<SnapshotStats> PackSnapshot(const std::string& root, const std::vector<std::string>& paths,
                                   const std::string& out, int level) {
  ScopedUtf8Locale utf8;
  ArchiveWriter tar(archive_write_new());
  archive_write_set_format_pax_restricted(tar.get());
  archive_write_add_filter_zstd(tar.get());
  archive_write_set_filter_option(tar.get(), "zstd", "compression-level", std::to_string(level).c_str());
  if (archive_write_open_filename(tar.get(), out.c_str()) != ARCHIVE_OK)
    return NotWritten("write", out, tar.get());
  UniqueFd top(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!top.valid()) return IoError("open", root);
  SnapshotStats stats;
  for (const auto& path : paths) {
    WHARF_TRY(ValidatePrefix(path));
    std::string disk = JoinPath(root, path);
    auto parent = OpenFolderBeneath(top.get(), Dirname(Relative(path)), root, false);
    if (!parent) return std::unexpected(parent.error());
    if (!parent->valid()) continue;  // missing: restored as nothing
    struct stat parent_st;
    if (::fstat(parent->get(), &parent_st) != 0) return IoError("inspect", Dirname(disk));
    auto opened = OpenEntry(parent->get(), Basename(path), disk, Holder{parent_st.st_uid, parent_st.st_gid});
    if (!opened) return std::unexpected(opened.error());
    if (!*opened) continue;
    if (!S_ISDIR((*opened)->st.st_mode))
      return Fail(ErrorCode::kInvalidArgument, disk + " is not a folder (a file or a link); persistent paths are "
                                                      "folders (declare the folder that holds the file)");
    WHARF_TRY(AddEntry(disk, Relative(path), **opened, tar.get(), stats));
    WHARF_TRY(Walk((*opened)->fd.get(), disk, Relative(path), Holder{(*opened)->st.st_uid, (*opened)->st.st_gid},
                   tar.get(), stats));
  }
  if (archive_write_close(tar.get()) != ARCHIVE_OK)
    return NotWritten("finish", out, tar.get());
  WHARF_TRY(SyncPath(out));
  return stats;
}

Result<SnapshotStats> CheckSnapshot(const std::string& archive_path, const std::vector<std::string>& paths,
                                    uint64_t max_data) {
  for (const auto& p : paths) WHARF_TRY(ValidatePrefix(p));
  WHARF_TRY(CheckDecodedSize(archive_path, max_data));
  SnapshotStats stats;
  WHARF_TRY(ReadEntries(archive_path, paths, [&](const Entry&, archive_entry*, archive* tar) -> Status {
    ++stats.entries;
    return ReadData(tar, archive_path, [&](const void*, size_t size) -> Status {
      stats.bytes += size;
      return {};
    });
  }));
  return stats;
}

namespace {

// What a restore writes into: the open parent of the declared folder, and the folder's
// owner (the empty folder's when there is one, else the snapshot's record of it).
struct RestoreTarget {
  UniqueFd parent;
  std::string name, dest, staging;
  std::optional<Holder> existing;  // the empty folder that is there
};

Result<RestoreTarget> OpenRestoreTarget(const std::string& root, const std::string& path) {
  RestoreTarget t;
  t.dest = JoinPath(root, path);
  t.name = Basename(path);
  t.staging = "." + t.name + ".wharf-restore";
  WHARF_TRY(MakeDirs(root));  // the FEC's root: the operator's, trusted
  UniqueFd top(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!top.valid()) return IoError("open", root);
  auto parent = OpenFolderBeneath(top.get(), Dirname(Relative(path)), root, true);
  if (!parent) return std::unexpected(parent.error());
  t.parent = std::move(*parent);
  struct stat st;
  if (::fstatat(t.parent.get(), t.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    UniqueFd dir(::openat(t.parent.get(), t.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    auto names = dir.valid() ? ListDirAt(dir.get(), t.dest) : Result<std::vector<std::string>>();
    if (!S_ISDIR(st.st_mode) || !dir.valid() || !names || !names->empty())
      return Fail(ErrorCode::kAlreadyExists, t.dest + " holds data (or is not a folder); a snapshot is restored "
                                                      "only into a missing or empty folder (move it away first)");
    t.existing = Holder{st.st_uid, st.st_gid};
  } else if (errno != ENOENT) {
    return IoError("inspect", t.dest);
  }
  return t;
}

}  // namespace

// Every write goes through descriptors opened without following links, below a staging
// folder that only this process (root, mode 0700) can enter until it is whole: a link a
// service user plants (the folder itself, a folder above it, an entry inside) is never
// written through. When the folder's owner is not root, every entry is restored as that
// owner's: a restore never puts another user's (root's) files into a service user's folder.
Result<SnapshotStats> RestoreSnapshotPath(const std::string& archive_path, const std::string& root,
                                          const std::string& path, const std::vector<std::string>& paths) {
  WHARF_TRY(ValidatePrefix(path));
  if (std::find(paths.begin(), paths.end(), path) == paths.end())
    return Fail(ErrorCode::kInvalidArgument, path + " is not one of the snapshot's folders");
  auto target = OpenRestoreTarget(root, path);
  if (!target) return std::unexpected(target.error());
  int parent = target->parent.get();
  std::string staging = JoinPath(Dirname(target->dest), target->staging);
  WHARF_TRY(RemoveTreeAt(parent, target->staging, Dirname(target->dest)));  // left by a restore cut short
  if (::mkdirat(parent, target->staging.c_str(), 0700) != 0) return IoError("create folder", staging);
  UniqueFd top(::openat(parent, target->staging.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  struct stat top_st;
  if (!top.valid() || ::fstat(top.get(), &top_st) != 0 || top_st.st_uid != ::geteuid())
    return Fail(ErrorCode::kUnsafe, staging + " was replaced while the restore made it; refusing to restore");
  bool as_root = ::geteuid() == 0;
  std::string prefix = Relative(path);
  SnapshotStats stats;
  std::optional<Holder> owner = target->existing;
  struct Folder {
    std::string rel;
    unsigned mode;
    timespec mtime;
  };
  std::vector<Folder> folders;
  // The owner an entry gets: its own when the folder is root's, else the folder owner's.
  auto owner_of = [&](archive_entry* e) {
    if (owner && owner->uid != 0) return *owner;
    return Holder{static_cast<uid_t>(archive_entry_uid(e)), static_cast<gid_t>(archive_entry_gid(e))};
  };
  auto finish_entry = [&](int dir, const std::string& name, archive_entry* e, const std::string& where) -> Status {
    Holder h = owner_of(e);
    if (as_root && ::fchownat(dir, name.c_str(), h.uid, h.gid, AT_SYMLINK_NOFOLLOW) != 0)
      return IoError("set the owner of", where);
    timespec times[2] = {{archive_entry_mtime(e), archive_entry_mtime_nsec(e)},
                         {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
    if (::utimensat(dir, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) return IoError("set the time of", where);
    return {};
  };
  Status restored = ReadEntries(archive_path, paths, [&](const Entry& entry, archive_entry* e, archive* tar) -> Status {
    if (!IsUnderPrefix(entry.path, path)) return {};  // another folder's
    // Setuid and setgid bits are not data: they are never restored.
    unsigned mode = archive_entry_perm(e) & 01777;
    if (entry.path == prefix) {
      folders.push_back({"", mode, {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}});
      if (!owner) owner = Holder{static_cast<uid_t>(archive_entry_uid(e)), static_cast<gid_t>(archive_entry_gid(e))};
      ++stats.entries;
      return {};
    }
    std::string rel = entry.path.substr(prefix.size() + 1);
    std::string where = JoinPath(staging, rel);
    auto dir = OpenParentNoFollow(top.get(), rel, staging);
    if (!dir) return std::unexpected(dir.error());
    std::string name = Basename(rel);
    ++stats.entries;
    switch (entry.type) {
      case EntryType::kDirectory:
        if (::mkdirat(dir->get(), name.c_str(), 0700) != 0) return IoError("create folder", where);
        folders.push_back({rel, mode, {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}});
        return as_root ? finish_entry(dir->get(), name, e, where) : Status{};
      case EntryType::kSymlink:
        if (::symlinkat(entry.link.c_str(), dir->get(), name.c_str()) != 0) return IoError("create link", where);
        return finish_entry(dir->get(), name, e, where);
      case EntryType::kFile: {
        UniqueFd file(::openat(dir->get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!file.valid()) return IoError("create", where);
        WHARF_TRY(ReadData(tar, archive_path, [&](const void* data, size_t size) -> Status {
          stats.bytes += size;
          return WriteAll(file.get(), data, size, where);
        }));
        if (::fchmod(file.get(), mode) != 0) return IoError("chmod", where);
        if (::fsync(file.get()) != 0) return IoError("fsync", where);
        return finish_entry(dir->get(), name, e, where);
      }
    }
    return {};
  });
  if (restored) {
    // Deepest first, so that a read-only folder is closed only after what is inside it;
    // each through a descriptor opened without following links.
    std::sort(folders.begin(), folders.end(), [](const Folder& a, const Folder& b) { return a.rel.size() > b.rel.size(); });
    for (const auto& f : folders) {
      timespec times[2] = {f.mtime, f.mtime};
      auto folder = f.rel.empty() ? Result<UniqueFd>(UniqueFd(::dup(top.get())))
                                  : OpenFolderBeneath(top.get(), f.rel, staging, false);
      if (!folder || !folder->valid() || ::fchmod(folder->get(), f.mode) != 0 || ::futimens(folder->get(), times) != 0) {
        restored = IoError("set mode and time of", JoinPath(staging, f.rel));
        break;
      }
    }
  }
  // The folder is handed to its owner only now that it is whole.
  if (restored && as_root && owner && ::fchown(top.get(), owner->uid, owner->gid) != 0)
    restored = IoError("set the owner of", staging);
  if (restored && ::syncfs(top.get()) != 0) restored = IoError("sync", staging);
  if (restored && target->existing && ::unlinkat(parent, target->name.c_str(), AT_REMOVEDIR) != 0)
    restored = IoError("replace the empty folder", target->dest);
  if (restored && ::renameat(parent, target->staging.c_str(), parent, target->name.c_str()) != 0)
    restored = IoError("rename " + staging + " to", target->dest);
  if (restored && ::fsync(parent) != 0) restored = IoError("sync", Dirname(target->dest));
  if (!restored) {
    (void)RemoveTreeAt(parent, target->staging, Dirname(target->dest));
    return std::unexpected(restored.error());
  }
  return stats;
}

}  // namespace wharf
