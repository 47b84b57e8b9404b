// The one place that touches the POSIX file API for wharf: RAII descriptors and locks,
// and the durable-write helpers every layer uses (write temp, fsync, rename, fsync the
// folder). Errors name the path and the system's reason.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace wharf {

/// Owns a file descriptor; closes it once.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { int fd = fd_; fd_ = -1; return fd; }

 private:
  int fd_ = -1;
};

/// An exclusive flock(2) held for the object's lifetime. Creates the lock file.
class FileLock {
 public:
  /// Blocks until the lock is held.
  static Result<FileLock> Acquire(const std::string& path);
  FileLock(FileLock&&) = default;
  FileLock& operator=(FileLock&&) = default;

 private:
  explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

std::unexpected<Error> IoError(const std::string& what, const std::string& path);

Result<UniqueFd> OpenRead(const std::string& path);
/// Calls `chunk` with successive pieces of the file (64 KiB at most); bounded memory.
Status ReadChunks(const std::string& path,
                  const std::function<Status(const char* data, size_t size)>& chunk);
/// Reads a whole file; refuses one larger than `max_bytes`.
Result<std::string> ReadFile(const std::string& path, uint64_t max_bytes = 64 << 20);
/// The same from an open descriptor (its position on); `path` names it in errors.
Result<std::string> ReadAll(int fd, const std::string& path, uint64_t max_bytes);
/// Writes `data` to `path` atomically and durably: a temp file beside it, fsync,
/// rename, fsync of the folder. Readers see the old or the new file, never a mix.
Status WriteFileAtomic(const std::string& path, std::string_view data, unsigned mode = 0644);
/// Writes every byte or fails.
Status WriteAll(int fd, const void* data, size_t size, const std::string& path);
/// The same at `offset` in the file (pwrite: the file position stays).
Status WriteAllAt(int fd, const void* data, size_t size, uint64_t offset, const std::string& path);
/// The memory page size (4 KiB on x86, 64 KiB on some PowerPC kernels).
size_t PageSize();
Status SyncPath(const std::string& path);
/// Copies a regular file to the new file `to` (mode 0644) and fsyncs it.
Status CopyFile(const std::string& from, const std::string& to);
/// Makes `path` and its missing parents, each with `mode` (0700 for a folder of secrets).
Status MakeDirs(const std::string& path, unsigned mode = 0755);
/// Replaces (or creates) the symlink `link` pointing at `target`, atomically.
Status SymlinkAtomic(const std::string& target, const std::string& link);
/// rename(2) then fsync of the destination's folder.
Status RenameDurable(const std::string& from, const std::string& to);
/// Removes a file, link or whole tree, making read-only folders writable first.
/// A missing path is not an error.
Status RemoveTree(const std::string& path);
/// Entry names of a folder, sorted, without "." and "..". A missing folder is empty.
Result<std::vector<std::string>> ListDir(const std::string& path);

/// The folder holding `rel` (a relative path below the folder `dir_fd`), each component
/// opened without following symlinks: a link planted inside a tree being written can never
/// redirect the write. `where` names the tree in errors.
Result<UniqueFd> OpenParentNoFollow(int dir_fd, const std::string& rel, const std::string& where);
/// ListDir of the open folder `dir_fd` (the descriptor stays open and unmoved).
Result<std::vector<std::string>> ListDirAt(int dir_fd, const std::string& where);
/// RemoveTree of `name` in the open folder `dir_fd`, never following a link: what a link
/// inside points to is left alone. A missing entry is not an error.
Status RemoveTreeAt(int dir_fd, const std::string& name, const std::string& where);
/// The target of the link `name` in the open folder `dir_fd`.
Result<std::string> ReadLinkAt(int dir_fd, const std::string& name, const std::string& where);

bool PathExists(const std::string& path);  // lstat: a dangling link exists
bool IsDirectory(const std::string& path);  // follows links
Result<std::string> ReadLink(const std::string& path);
/// Last modification, in seconds since the epoch.
Result<int64_t> FileModifiedTime(const std::string& path);

/// This machine's host name up to its first dot ("fec01" of "fec01.cern.ch"); "" when the
/// system has none.
std::string ShortHostName();

/// A unique name beside `path` for a temporary file or folder: "<dir>/.<base>.tmp-<pid>-<n>".
std::string TempSibling(const std::string& path);
/// Removes from `dir` the temporaries (TempSibling names) left by processes that are gone,
/// e.g. a publisher killed mid-copy; those of running processes stay.
Status RemoveStaleTemps(const std::string& dir);
std::string Dirname(const std::string& path);
std::string Basename(const std::string& path);
/// Joins with exactly one '/'.
std::string JoinPath(std::string_view a, std::string_view b);
/// `target` relative to the folder `from_dir`; both absolute and normalised.
std::string RelativePath(const std::string& from_dir, const std::string& target);
/// An absolute, normalised form of `path` (no symlinks resolved).
std::string AbsolutePath(const std::string& path);

}  // namespace wharf
