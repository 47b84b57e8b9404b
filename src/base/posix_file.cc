// The POSIX side of base/file.h.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/file.h"

// Files past 4 GiB and times past 2038 on 32-bit FECs: wharf and every library linked with it
// are built with -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64 there (cmake/toolchains, docs/embedded.md).
static_assert(sizeof(off_t) == 8, "off_t must be 64-bit: build with -D_FILE_OFFSET_BITS=64");
static_assert(sizeof(time_t) == 8, "time_t must be 64-bit: build with -D_TIME_BITS=64 (glibc >= 2.34)");

namespace wharf {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.Release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

std::unexpected<Error> IoError(const std::string& what, const std::string& path) {
  int saved = errno;
  ErrorCode code = saved == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo;
  return Fail(code, "cannot " + what + " " + path + ": " + std::strerror(saved));
}

Result<FileLock> FileLock::Acquire(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return IoError("open lock file", path);
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return IoError("lock", path);
  }
  return FileLock(std::move(fd));
}

Result<UniqueFd> OpenRead(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return IoError("open", path);
  return fd;
}

Result<std::string> ReadFile(const std::string& path, uint64_t max_bytes) {
  auto fd = OpenRead(path);
  if (!fd) return std::unexpected(fd.error());
  return ReadAll(fd->get(), path, max_bytes);
}

Result<std::string> ReadAll(int fd, const std::string& path, uint64_t max_bytes) {
  std::string data;
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("read", path);
    if (n == 0) break;
    if (data.size() + n > max_bytes)
      return Fail(ErrorCode::kCorrupt, path + ": larger than " + std::to_string(max_bytes) +
                                           " bytes, which no such file should be");
    data.append(buffer, n);
  }
  return data;
}

Status WriteAll(int fd, const void* data, size_t size, const std::string& path) {
  auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("write", path);
    p += n;
    size -= n;
  }
  return {};
}

Status WriteAllAt(int fd, const void* data, size_t size, uint64_t offset, const std::string& path) {
  auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::pwrite(fd, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("write", path);
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return {};
}

size_t PageSize() {
  static const size_t size = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

Status SyncPath(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return IoError("open", path);
  if (::fsync(fd.get()) != 0) return IoError("fsync", path);
  return {};
}

Status WriteFileAtomic(const std::string& path, std::string_view data, unsigned mode) {
  std::string temp = TempSibling(path);
  {
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (!fd.valid()) return IoError("create", temp);
    if (::fchmod(fd.get(), mode) != 0) return IoError("chmod", temp);
    auto written = WriteAll(fd.get(), data.data(), data.size(), temp);
    if (written && ::fsync(fd.get()) != 0) written = IoError("fsync", temp);
    if (!written) {
      ::unlink(temp.c_str());
      return written;
    }
  }
  auto renamed = RenameDurable(temp, path);
  if (!renamed) ::unlink(temp.c_str());
  return renamed;
}

Status ReadChunks(const std::string& path,
                  const std::function<Status(const char* data, size_t size)>& chunk) {
  auto fd = OpenRead(path);
  if (!fd) return std::unexpected(fd.error());
  std::string buffer(1 << 16, '\0');
  for (;;) {
    ssize_t n = ::read(fd->get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("read", path);
    if (n == 0) return {};
    WHARF_TRY(chunk(buffer.data(), static_cast<size_t>(n)));
  }
}

Status CopyFile(const std::string& from, const std::string& to) {
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!out.valid()) return IoError("create", to);
  WHARF_TRY(ReadChunks(from, [&](const char* data, size_t size) {
    return WriteAll(out.get(), data, size, to);
  }));
  if (::fsync(out.get()) != 0) return IoError("fsync", to);
  return {};
}

Status MakeDirs(const std::string& path, unsigned mode) {
  if (path.empty() || IsDirectory(path)) return {};
  std::string parent = Dirname(path);
  if (parent != path) WHARF_TRY(MakeDirs(parent, mode));
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return IoError("create folder", path);
  return {};
}

Status RenameDurable(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return IoError("rename " + from + " to", to);
  return SyncPath(Dirname(to));
}

Status SymlinkAtomic(const std::string& target, const std::string& link) {
  std::string temp = TempSibling(link);
  if (::symlink(target.c_str(), temp.c_str()) != 0) return IoError("create link", temp);
  auto renamed = RenameDurable(temp, link);
  if (!renamed) ::unlink(temp.c_str());
  return renamed;
}

Status RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return IoError("inspect", path);
  }
  if (S_ISDIR(st.st_mode)) {
    if ((st.st_mode & 0700) != 0700) ::chmod(path.c_str(), 0700);
    auto names = ListDir(path);
    if (!names) return std::unexpected(names.error());
    for (const auto& name : *names) WHARF_TRY(RemoveTree(JoinPath(path, name)));
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return IoError("remove folder", path);
    return {};
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return IoError("remove", path);
  return {};
}

namespace {

// The sorted names of an open folder, but "." and ".."; closes `dir`.
std::vector<std::string> ReadNames(DIR* dir) {
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

Result<std::vector<std::string>> ListDir(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return std::vector<std::string>();
    return IoError("list", path);
  }
  return ReadNames(dir);
}

Result<std::vector<std::string>> ListDirAt(int dir_fd, const std::string& where) {
  int copy = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (copy < 0) return IoError("list", where);
  DIR* dir = ::fdopendir(copy);
  if (dir == nullptr) {
    ::close(copy);
    return IoError("list", where);
  }
  return ReadNames(dir);
}

Status RemoveTreeAt(int dir_fd, const std::string& name, const std::string& where) {
  std::string path = JoinPath(where, name);
  struct stat st;
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    return IoError("inspect", path);
  }
  if (S_ISDIR(st.st_mode)) {
    UniqueFd dir(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir.valid()) return IoError("open", path);
    if ((st.st_mode & 0700) != 0700) (void)::fchmod(dir.get(), 0700);
    auto names = ListDirAt(dir.get(), path);
    if (!names) return std::unexpected(names.error());
    for (const auto& inner : *names) WHARF_TRY(RemoveTreeAt(dir.get(), inner, path));
    if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) return IoError("remove folder", path);
    return {};
  }
  if (::unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT) return IoError("remove", path);
  return {};
}

Result<std::string> ReadLinkAt(int dir_fd, const std::string& name, const std::string& where) {
  char buffer[4096];
  ssize_t n = ::readlinkat(dir_fd, name.c_str(), buffer, sizeof buffer);
  if (n < 0) return IoError("read link", JoinPath(where, name));
  if (static_cast<size_t>(n) == sizeof buffer)
    return Fail(ErrorCode::kInvalidArgument, JoinPath(where, name) + ": the link's target is too long");
  return std::string(buffer, n);
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Result<std::string> ReadLink(const std::string& path) {
  char buffer[4096];
  ssize_t n = ::readlink(path.c_str(), buffer, sizeof buffer);
  if (n < 0) return IoError("read link", path);
  return std::string(buffer, n);
}

Result<int64_t> FileModifiedTime(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return IoError("inspect", path);
  return static_cast<int64_t>(st.st_mtime);
}

std::string TempSibling(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return JoinPath(Dirname(path), "." + Basename(path) + ".tmp-" + std::to_string(::getpid()) +
                                     "-" + std::to_string(counter++));
}

Status RemoveStaleTemps(const std::string& dir) {
  auto names = ListDir(dir);
  if (!names) return std::unexpected(names.error());
  for (const auto& name : *names) {
    auto mark = name.rfind(".tmp-");
    if (name[0] != '.' || mark == std::string::npos) continue;
    long pid = std::strtol(name.c_str() + mark + 5, nullptr, 10);
    if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH))
      WHARF_TRY(RemoveTree(JoinPath(dir, name)));
  }
  return {};
}

std::string Dirname(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string Basename(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string JoinPath(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  std::string joined(a);
  if (joined.back() != '/') joined += '/';
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  joined += b;
  return joined;
}

static std::vector<std::string> Components(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = end + 1;
  }
  return parts;
}

std::string AbsolutePath(const std::string& path) {
  std::string full = path;
  if (path.empty() || path[0] != '/') {
    char cwd[4096];
    full = JoinPath(::getcwd(cwd, sizeof cwd) ? cwd : "/", path);
  }
  std::string out;
  for (const auto& part : Components(full)) out += "/" + part;
  return out.empty() ? "/" : out;
}

std::string RelativePath(const std::string& from_dir, const std::string& target) {
  auto from = Components(from_dir);
  auto to = Components(target);
  size_t common = 0;
  while (common < from.size() && common < to.size() && from[common] == to[common]) ++common;
  std::string rel;
  for (size_t i = common; i < from.size(); ++i) rel += rel.empty() ? ".." : "/..";
  for (size_t i = common; i < to.size(); ++i) rel += (rel.empty() ? "" : "/") + to[i];
  return rel.empty() ? "." : rel;
}

Result<UniqueFd> OpenParentNoFollow(int dir_fd, const std::string& rel, const std::string& where) {
  UniqueFd dir(::dup(dir_fd));
  if (!dir.valid()) return IoError("open", where);
  size_t start = 0;
  for (size_t slash = rel.find('/'); slash != std::string::npos; slash = rel.find('/', start)) {
    std::string part = rel.substr(start, slash - start);
    UniqueFd next(::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid())
      return Fail(ErrorCode::kUnsafe, JoinPath(where, rel) + ": a parent is missing or is not a folder "
                                                            "(a symlink?); refusing to write through it");
    dir = std::move(next);
    start = slash + 1;
  }
  return dir;
}

std::string ShortHostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "";
  std::string host(name);
  return host.substr(0, host.find('.'));
}

}  // namespace wharf
