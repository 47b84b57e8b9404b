#include "archive/snapshot.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
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

Status Walk(const std::string& disk_dir, const std::string& path, archive* tar, SnapshotStats& stats);

Status AddEntry(const std::string& disk_path, const std::string& path, const struct stat& st, archive* tar,
                SnapshotStats& stats) {
  auto tar_error = [&] {
    return Fail(ErrorCode::kIo, disk_path + ": cannot add it to the snapshot (" + ArchiveMessage(tar) +
                                    "); check the free space under var/lib/wharf");
  };
  ArchiveEntry e(archive_entry_new());
  archive_entry_set_pathname(e.get(), path.c_str());
  archive_entry_set_perm(e.get(), st.st_mode & 07777);
  archive_entry_set_uid(e.get(), st.st_uid);
  archive_entry_set_gid(e.get(), st.st_gid);
  archive_entry_set_mtime(e.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  UniqueFd fd;
  if (S_ISDIR(st.st_mode)) {
    archive_entry_set_filetype(e.get(), AE_IFDIR);
  } else if (S_ISLNK(st.st_mode)) {
    auto target = ReadLink(disk_path);
    if (!target) return std::unexpected(target.error());
    archive_entry_set_filetype(e.get(), AE_IFLNK);
    archive_entry_set_symlink(e.get(), target->c_str());
  } else {
    auto opened = OpenRead(disk_path);
    if (!opened) return std::unexpected(opened.error());
    fd = std::move(*opened);
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_size(e.get(), st.st_size);
  }
  if (archive_write_header(tar, e.get()) != ARCHIVE_OK) return tar_error();
  ++stats.entries;
  if (!fd.valid()) return {};
  // Exactly the size the header declared: a file that grew is cut there, one that shrank
  // fails this snapshot rather than storing bytes that never were.
  char buffer[64 << 10];
  uint64_t left = st.st_size;
  while (left > 0) {
    ssize_t n = ::read(fd.get(), buffer, std::min<uint64_t>(left, sizeof buffer));
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

Status Walk(const std::string& disk_dir, const std::string& path, archive* tar, SnapshotStats& stats) {
  auto names = ListDir(disk_dir);
  if (!names) return std::unexpected(names.error());
  for (const auto& name : *names) {
    std::string disk_path = JoinPath(disk_dir, name), entry = path + "/" + name;
    struct stat st;
    if (::lstat(disk_path.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;  // removed since the listing: live data
      return IoError("inspect", disk_path);
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) continue;
    if (!IsValidUtf8(entry) || !ValidateEntryPath(entry))
      return Fail(ErrorCode::kInvalidArgument, disk_path + ": the name is not plain UTF-8; rename it");
    WHARF_TRY(AddEntry(disk_path, entry, st, tar, stats));
    if (S_ISDIR(st.st_mode)) WHARF_TRY(Walk(disk_path, entry, tar, stats));
  }
  return {};
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
  if (!PathExists(where)) return true;
  if (!IsDirectory(where)) return false;
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
  SnapshotStats stats;
  for (const auto& path : paths) {
    WHARF_TRY(ValidatePrefix(path));
    std::string disk = JoinPath(root, path);
    struct stat st;
    if (::stat(disk.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;
      return IoError("inspect", disk);
    }
    if (!S_ISDIR(st.st_mode))
      return Fail(ErrorCode::kInvalidArgument, disk + " is not a folder; persistent paths are folders "
                                                      "(declare the folder that holds the file)");
    WHARF_TRY(AddEntry(disk, Relative(path), st, tar.get(), stats));
    WHARF_TRY(Walk(disk, Relative(path), tar.get(), stats));
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

Result<SnapshotStats> RestoreSnapshotPath(const std::string& archive_path, const std::string& root,
                                          const std::string& path, const std::vector<std::string>& paths) {
  WHARF_TRY(ValidatePrefix(path));
  if (std::find(paths.begin(), paths.end(), path) == paths.end())
    return Fail(ErrorCode::kInvalidArgument, path + " is not one of the snapshot's folders");
  std::string dest = JoinPath(root, path);
  if (!PersistentPathEmpty(root, path))
    return Fail(ErrorCode::kAlreadyExists, dest + " holds data; a snapshot is restored only into a "
                                                  "missing or empty folder (move it away first)");
  WHARF_TRY(MakeDirs(Dirname(dest)));
  std::string staging = JoinPath(Dirname(dest), "." + Basename(dest) + ".wharf-restore");
  WHARF_TRY(RemoveTree(staging));  // left by a restore that was cut short
  if (::mkdir(staging.c_str(), 0700) != 0) return IoError("create folder", staging);
  UniqueFd top(::open(staging.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!top.valid()) return IoError("open", staging);
  bool as_root = ::geteuid() == 0;
  std::string prefix = Relative(path);
  SnapshotStats stats;
  struct Folder {
    std::string rel;
    unsigned mode;
    timespec mtime;
  };
  std::vector<Folder> folders;
  auto finish_entry = [&](int parent, const std::string& name, archive_entry* e, const std::string& where) -> Status {
    if (as_root && ::fchownat(parent, name.c_str(), archive_entry_uid(e), archive_entry_gid(e), AT_SYMLINK_NOFOLLOW) != 0)
      return IoError("set the owner of", where);
    timespec times[2] = {{archive_entry_mtime(e), archive_entry_mtime_nsec(e)},
                         {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
    if (::utimensat(parent, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) return IoError("set the time of", where);
    return {};
  };
  Status restored = ReadEntries(archive_path, paths, [&](const Entry& entry, archive_entry* e, archive* tar) -> Status {
    if (!IsUnderPrefix(entry.path, path)) return {};  // another folder's
    // Setuid and setgid bits are not data: they are never restored.
    unsigned mode = archive_entry_perm(e) & 01777;
    if (entry.path == prefix) {
      folders.push_back({"", mode, {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}});
      if (as_root && ::fchown(top.get(), archive_entry_uid(e), archive_entry_gid(e)) != 0)
        return IoError("set the owner of", staging);
      ++stats.entries;
      return {};
    }
    std::string rel = entry.path.substr(prefix.size() + 1);
    std::string where = JoinPath(staging, rel);
    auto parent = OpenParentNoFollow(top.get(), rel, staging);
    if (!parent) return std::unexpected(parent.error());
    std::string name = Basename(rel);
    ++stats.entries;
    switch (entry.type) {
      case EntryType::kDirectory:
        if (::mkdirat(parent->get(), name.c_str(), 0700) != 0) return IoError("create folder", where);
        folders.push_back({rel, mode, {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}});
        return as_root ? finish_entry(parent->get(), name, e, where) : Status{};
      case EntryType::kSymlink:
        if (::symlinkat(entry.link.c_str(), parent->get(), name.c_str()) != 0) return IoError("create link", where);
        return finish_entry(parent->get(), name, e, where);
      case EntryType::kFile: {
        UniqueFd file(::openat(parent->get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!file.valid()) return IoError("create", where);
        WHARF_TRY(ReadData(tar, archive_path, [&](const void* data, size_t size) -> Status {
          stats.bytes += size;
          return WriteAll(file.get(), data, size, where);
        }));
        if (::fchmod(file.get(), mode) != 0) return IoError("chmod", where);
        if (::fsync(file.get()) != 0) return IoError("fsync", where);
        return finish_entry(parent->get(), name, e, where);
      }
    }
    return {};
  });
  if (restored) {
    // Deepest first, so that a read-only folder is closed only after what is inside it.
    std::sort(folders.begin(), folders.end(), [](const Folder& a, const Folder& b) { return a.rel.size() > b.rel.size(); });
    for (const auto& f : folders) {
      timespec times[2] = {f.mtime, f.mtime};
      bool top_folder = f.rel.empty();
      if ((top_folder ? ::fchmod(top.get(), f.mode) : ::fchmodat(top.get(), f.rel.c_str(), f.mode, 0)) != 0 ||
          (top_folder ? ::futimens(top.get(), times) : ::utimensat(top.get(), f.rel.c_str(), times, 0)) != 0) {
        restored = IoError("set mode and time of", JoinPath(staging, f.rel));
        break;
      }
    }
  }
  if (restored && ::syncfs(top.get()) != 0) restored = IoError("sync", staging);
  if (restored && IsDirectory(dest) && ::rmdir(dest.c_str()) != 0) restored = IoError("replace the empty folder", dest);
  if (restored) restored = RenameDurable(staging, dest);
  if (!restored) {
    (void)RemoveTree(staging);
    return std::unexpected(restored.error());
  }
  return stats;
}

}  // namespace wharf
