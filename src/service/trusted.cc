#include "service/trusted.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace wharf {
namespace {

std::string Uid(uid_t uid) { return "uid " + std::to_string(uid); }

// An entry name inside a folder: one component.
Status CheckName(const TrustedDir& dir, const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    return Fail(ErrorCode::kInvalidArgument, dir.Shown(name) + ": not a plain file name");
  return {};
}

// What a descriptor opened in a trusted folder must be: `type`, owned by root or this user;
// a regular file also writable by no one else and with one link (a hard link would make
// another file's bytes ours).
Status CheckOpened(const struct stat& st, mode_t type, const std::string& shown) {
  if ((st.st_mode & S_IFMT) != type)
    return Fail(ErrorCode::kUnsafe, shown + ": not a " + (type == S_IFSOCK ? "socket" : "regular file") +
                                        "; refusing to use it (remove it; the process server makes it again)");
  if (!TrustedOwner(st.st_uid))
    return Fail(ErrorCode::kUnsafe, shown + ": owned by " + Uid(st.st_uid) +
                                        ", not by root or you; refusing to trust it (remove it)");
  if (type == S_IFREG && ((st.st_mode & 022) != 0 || st.st_nlink != 1))
    return Fail(ErrorCode::kUnsafe, shown + ((st.st_mode & 022) != 0 ? ": writable by group or others"
                                                                      : ": has other hard links") +
                                        "; refusing to trust it (remove it)");
  return {};
}

Status CheckFolder(int fd, const std::string& shown, bool last) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return IoError("stat", shown);
  if (!TrustedOwner(st.st_uid))
    return Fail(ErrorCode::kUnsafe, shown + ": owned by " + Uid(st.st_uid) +
                                        ", not by root or you: a folder another user controls is not "
                                        "followed (make it root's, or run as its owner)");
  if ((st.st_mode & 002) && !(st.st_mode & S_ISVTX))
    return Fail(ErrorCode::kUnsafe, shown + ": writable by everyone without the sticky bit; chmod o-w " + shown);
  if (last && (st.st_mode & 022))
    return Fail(ErrorCode::kUnsafe, shown + ": writable by group or others, who could replace the service's "
                                            "files in it; chmod go-w " + shown);
  return {};
}

}  // namespace

bool TrustedOwner(uid_t uid) { return uid == 0 || uid == ::geteuid(); }

Result<TrustedDir> TrustedDir::Open(const std::string& path, bool create) {
  std::string absolute = AbsolutePath(path);
  UniqueFd dir(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return IoError("open", "/");
  std::string shown;
  size_t start = 1;
  bool last = absolute == "/";
  WHARF_TRY(CheckFolder(dir.get(), "/", last));
  while (!last) {
    size_t slash = absolute.find('/', start);
    last = slash == std::string::npos;
    std::string part = absolute.substr(start, last ? std::string::npos : slash - start);
    start = slash + 1;
    shown += "/" + part;
    constexpr int kFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    UniqueFd next(::openat(dir.get(), part.c_str(), kFlags));
    if (!next.valid() && errno == ENOENT && create) {
      if (::mkdirat(dir.get(), part.c_str(), 0755) != 0 && errno != EEXIST) return IoError("create folder", shown);
      next = UniqueFd(::openat(dir.get(), part.c_str(), kFlags));
    }
    if (!next.valid()) {
      if (errno == ELOOP || errno == ENOTDIR)
        return Fail(ErrorCode::kUnsafe, shown + ": a symlink or not a folder; the service's files are never "
                                                "reached through a symlink (give the real folder)");
      if (errno == ENOENT) return Fail(ErrorCode::kNotFound, shown + ": no such folder");
      return IoError("open", shown);
    }
    WHARF_TRY(CheckFolder(next.get(), shown, last));
    dir = std::move(next);
  }
  return TrustedDir(std::move(dir), absolute);
}

Result<UniqueFd> TrustedDir::OpenFile(const std::string& name) const {
  WHARF_TRY(CheckName(*this, name));
  UniqueFd fd(::openat(fd_.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ELOOP)
      return Fail(ErrorCode::kUnsafe, Shown(name) + ": a symlink; refusing to follow it (remove it)");
    if (errno == ENOENT) return Fail(ErrorCode::kNotFound, Shown(name) + ": no such file");
    return IoError("open", Shown(name));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return IoError("stat", Shown(name));
  WHARF_TRY(CheckOpened(st, S_IFREG, Shown(name)));
  return fd;
}

Result<std::string> TrustedDir::ReadFile(const std::string& name, uint64_t max_bytes) const {
  auto fd = OpenFile(name);
  if (!fd) return std::unexpected(fd.error());
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd->get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("read", Shown(name));
    if (n == 0) return text;
    if (text.size() + static_cast<size_t>(n) > max_bytes)
      return Fail(ErrorCode::kCorrupt, Shown(name) + ": larger than " + std::to_string(max_bytes) + " bytes");
    text.append(buf, static_cast<size_t>(n));
  }
}

Result<UniqueFd> TrustedDir::OpenAppend(const std::string& name, mode_t mode) const {
  WHARF_TRY(CheckName(*this, name));
  UniqueFd fd(::openat(fd_.get(), name.c_str(),
                       O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode));
  if (!fd.valid()) {
    if (errno == ELOOP)
      return Fail(ErrorCode::kUnsafe, Shown(name) + ": a symlink; refusing to write through it (remove it)");
    return IoError("open", Shown(name));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return IoError("stat", Shown(name));
  WHARF_TRY(CheckOpened(st, S_IFREG, Shown(name)));
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

Status TrustedDir::WriteAtomic(const std::string& name, std::string_view data, mode_t mode) const {
  WHARF_TRY(CheckName(*this, name));
  static std::atomic<unsigned> counter{0};
  std::string temp = "." + name + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  UniqueFd fd(::openat(fd_.get(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd.valid()) return IoError("create", Shown(temp));
  auto written = ::fchmod(fd.get(), mode) == 0 ? WriteAll(fd.get(), data.data(), data.size(), Shown(temp))
                                                : IoError("chmod", Shown(temp));
  if (written && ::fsync(fd.get()) != 0) written = IoError("fsync", Shown(temp));
  if (written && ::renameat(fd_.get(), temp.c_str(), fd_.get(), name.c_str()) != 0)
    written = IoError("rename", Shown(temp));
  if (!written) {
    ::unlinkat(fd_.get(), temp.c_str(), 0);
    return written;
  }
  ::fsync(fd_.get());
  return {};
}

Status TrustedDir::Rename(const std::string& from, const std::string& to) const {
  WHARF_TRY(CheckName(*this, from));
  WHARF_TRY(CheckName(*this, to));
  if (::renameat(fd_.get(), from.c_str(), fd_.get(), to.c_str()) != 0 && errno != ENOENT)
    return IoError("rename", Shown(from));
  return {};
}

Status TrustedDir::Remove(const std::string& name) const {
  WHARF_TRY(CheckName(*this, name));
  if (::unlinkat(fd_.get(), name.c_str(), 0) != 0 && errno != ENOENT) return IoError("remove", Shown(name));
  return {};
}

Result<std::string> TrustedDir::SocketPath(const std::string& name) const {
  WHARF_TRY(CheckName(*this, name));
  std::string path = "/proc/self/fd/" + std::to_string(fd_.get()) + "/" + name;
  if (path.size() >= sizeof(sockaddr_un{}.sun_path))
    return Fail(ErrorCode::kInvalidArgument, Shown(name) + ": socket name too long");
  return path;
}

Result<UniqueFd> TrustedDir::Listen(const std::string& name, mode_t mode, gid_t gid) const {
  // Made under a hidden name and renamed into place once it listens: whoever sees the name
  // can connect (a client that waits for the file never meets a refused connection), and an
  // old socket left by a server that died is replaced in the same step.
  std::string staged = "." + name + ".new";
  auto path = SocketPath(staged);
  if (!path) return std::unexpected(path.error());
  mode &= 0770;  // never world-writable
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return IoError("socket", Shown(name));
  WHARF_TRY(Remove(staged));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path->c_str(), path->size() + 1);
  // The socket is made with its final mode: never more open than asked, not even briefly.
  mode_t saved = ::umask(0777 & ~mode);
  int bound = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int bind_errno = errno;
  ::umask(saved);
  if (bound != 0) {
    errno = bind_errno;
    return IoError("bind", Shown(name));
  }
  if (gid != static_cast<gid_t>(-1) &&
      ::fchownat(fd_.get(), staged.c_str(), static_cast<uid_t>(-1), gid, AT_SYMLINK_NOFOLLOW) != 0)
    return IoError("chown", Shown(name));
  if (::listen(fd.get(), 16) != 0) return IoError("listen", Shown(name));
  if (::renameat(fd_.get(), staged.c_str(), fd_.get(), name.c_str()) != 0) return IoError("rename", Shown(name));
  return fd;
}

Result<UniqueFd> TrustedDir::Connect(const std::string& name) const {
  auto path = SocketPath(name);
  if (!path) return std::unexpected(path.error());
  struct stat st {};
  if (::fstatat(fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT)
      return Fail(ErrorCode::kUnavailable, Shown(name) + ": no such socket; is the service running "
                                                         "(`wharf-agent list`)?");
    return IoError("stat", Shown(name));
  }
  WHARF_TRY(CheckOpened(st, S_IFSOCK, Shown(name)));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path->c_str(), path->size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return IoError("socket", Shown(name));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Fail(errno == EACCES ? ErrorCode::kRejected : ErrorCode::kUnavailable,
                Shown(name) + ": cannot connect (" + std::strerror(errno) +
                    "); is the service running (`wharf-agent list`), and are you in its group?");
  ucred peer{};
  socklen_t size = sizeof peer;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0) return IoError("getsockopt", Shown(name));
  if (!TrustedOwner(peer.uid))
    return Fail(ErrorCode::kUnsafe, Shown(name) + ": its listener runs as " + Uid(peer.uid) +
                                        ", not as root or you; refusing to talk to it");
  return fd;
}

namespace {

struct ProcStat {
  char state = '?';
  uint64_t start_ticks = 0;
};

Result<ProcStat> ReadProcStat(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return Fail(ErrorCode::kNotFound, "process " + std::to_string(pid) + " is gone");
    return IoError("open", path);
  }
  char buf[4096];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return IoError("read", path);
  std::string_view text(buf, static_cast<size_t>(n));
  // "PID (COMM) STATE ..." where COMM may hold anything, ')' too: fields count from the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string_view::npos || close + 2 >= text.size()) return Fail(ErrorCode::kCorrupt, path + ": unreadable");
  ProcStat stat;
  stat.state = text[close + 2];
  std::string_view rest = text.substr(close + 1);
  // rest begins with field 3 (state); the start time is field 22.
  for (int field = 3; field < 22; ++field) {
    size_t space = rest.find(' ', 1);
    if (space == std::string_view::npos) return Fail(ErrorCode::kCorrupt, path + ": too few fields");
    rest.remove_prefix(space);
  }
  rest.remove_prefix(1);
  auto [end, error] = std::from_chars(rest.data(), rest.data() + rest.size(), stat.start_ticks);
  if (error != std::errc() || end == rest.data()) return Fail(ErrorCode::kCorrupt, path + ": no start time");
  return stat;
}

}  // namespace

Result<uint64_t> ProcessStartTicks(pid_t pid) {
  auto stat = ReadProcStat(pid);
  if (!stat) return std::unexpected(stat.error());
  return stat->start_ticks;
}

bool ProcessRuns(pid_t pid, uint64_t start_ticks) {
  auto stat = ReadProcStat(pid);
  return stat && stat->start_ticks == start_ticks && stat->state != 'Z' && stat->state != 'X';
}

Status SignalProcess(pid_t pid, uint64_t start_ticks, int signal, const std::string& what) {
  std::string shown = what + " (PID " + std::to_string(pid) + ")";
  if (pid <= 1) return Fail(ErrorCode::kUnsafe, shown + ": not a process server's PID; refusing to signal it");
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  // Kernels before 5.3 have no pidfd: the check below and kill() then leave a window of a
  // few microseconds in which the process could end and its PID be taken.
  bool no_pidfd = !pidfd.valid() && errno == ENOSYS;
  if (!pidfd.valid() && !no_pidfd) {
    if (errno == ESRCH)
      return Fail(ErrorCode::kUnavailable, shown + ": gone; is it running (`wharf-agent list`)?");
    return IoError("pidfd_open", shown);
  }
  // The pidfd holds the process: checked now, it is the one signalled below (or none).
  auto started = ProcessStartTicks(pid);
  if (!started) return Prefix(shown, started.error());
  if (*started != start_ticks)
    return Fail(ErrorCode::kUnsafe, shown + ": another process holds this PID now (its start time differs "
                                            "from the status file's); refusing to signal it");
  struct stat st {};
  std::string proc = "/proc/" + std::to_string(pid);
  if (::stat(proc.c_str(), &st) != 0) return IoError("stat", proc);
  if (!TrustedOwner(st.st_uid))
    return Fail(ErrorCode::kUnsafe, shown + ": runs as " + Uid(st.st_uid) + ", not as root or you; refusing to signal it");
  long sent = no_pidfd ? ::kill(pid, signal) : ::syscall(SYS_pidfd_send_signal, pidfd.get(), signal, nullptr, 0);
  if (sent != 0)
    return Fail(errno == EPERM ? ErrorCode::kRejected : ErrorCode::kUnavailable,
                shown + ": cannot signal it: " + std::strerror(errno) +
                    (errno == EPERM ? "; run as its owner, or `sudo wharf-agent svc VERB NAME`" : ""));
  return {};
}

}  // namespace wharf
