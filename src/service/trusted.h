// A service's runtime files (console sockets, status file, log) as the process server makes
// them and as `wharf-agent list | start | stop | restart | attach | logs` (and the privileged
// `svc` entry, run as root through sudo) open them. No path another user controls is
// followed:
//   - a folder is opened from "/" one component at a time with O_NOFOLLOW; every component
//     is owned by root or by this process's (effective) user, none is writable by all
//     without the sticky bit, and the folder itself is writable by no one else, so nobody
//     else can plant, swap or remove an entry in it;
//   - an entry is opened relative to that folder's descriptor with O_NOFOLLOW, and what was
//     opened is checked (type, owner, one link, not writable by others) on the descriptor;
//   - a socket is connected through the folder's descriptor (/proc/self/fd/N/NAME) and its
//     listener must run as root or as this user (SO_PEERCRED);
//   - a process is signalled only through a pidfd, once its start time matches the one its
//     status file recorded (so a PID reused by another process is never signalled).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/file.h"

namespace wharf {

/// Root, or this process's effective user: the owners a runtime file may have.
bool TrustedOwner(uid_t uid);

/// A folder opened as above. Move-only; owns its descriptor.
class TrustedDir {
 public:
  /// Opens `path` (made absolute). With `create`, missing components are made (0755) as the
  /// walk reaches them. Fails (kUnsafe) on a symlink, an untrusted owner or a folder others
  /// may write to, naming the component and what to do.
  static Result<TrustedDir> Open(const std::string& path, bool create);

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  /// `name` inside this folder, for messages.
  std::string Shown(const std::string& name) const { return JoinPath(path_, name); }

  /// A regular file opened for reading: owned by root or this user, writable by no one
  /// else, one link.
  Result<UniqueFd> OpenFile(const std::string& name) const;
  /// The whole of such a file; refuses one larger than `max_bytes`.
  Result<std::string> ReadFile(const std::string& name, uint64_t max_bytes) const;
  /// A log file opened for appending (made with `mode` when missing); an existing one must
  /// be a regular file of root or this user with one link.
  Result<UniqueFd> OpenAppend(const std::string& name, mode_t mode) const;
  /// Replaces `name` atomically: a temp file made with O_EXCL, fsync, renameat.
  Status WriteAtomic(const std::string& name, std::string_view data, mode_t mode) const;
  Status Rename(const std::string& from, const std::string& to) const;
  /// Removes a file, link or socket; a missing one is not an error.
  Status Remove(const std::string& name) const;

  /// A listening UNIX socket at `name` (an old one there is removed), made with `mode` and
  /// given group `gid` (-1: the process's). The socket is never world-writable.
  Result<UniqueFd> Listen(const std::string& name, mode_t mode, gid_t gid) const;
  /// Connects to the socket `name`: a socket (not a link) owned by root or this user, whose
  /// listener runs as root or this user.
  Result<UniqueFd> Connect(const std::string& name) const;

 private:
  TrustedDir(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  /// "/proc/self/fd/N/NAME": a path that reaches `name` through this descriptor.
  Result<std::string> SocketPath(const std::string& name) const;

  UniqueFd fd_;
  std::string path_;
};

/// When process `pid` started (clock ticks after boot: field 22 of /proc/PID/stat). A PID
/// and its start time name one process for the life of the system.
Result<uint64_t> ProcessStartTicks(pid_t pid);

/// Whether the process that started at `start_ticks` runs still: not ended, not a zombie
/// its new parent has yet to reap.
bool ProcessRuns(pid_t pid, uint64_t start_ticks);

/// Sends `signal` to process `pid` only when it is the process that started at
/// `start_ticks` and runs as root or this user; through a pidfd, so that the process
/// checked is the one signalled. `what` names it in errors.
Status SignalProcess(pid_t pid, uint64_t start_ticks, int signal, const std::string& what);

}  // namespace wharf
