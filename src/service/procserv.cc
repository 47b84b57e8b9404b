#include "service/procserv.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <pty.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "base/clock.h"
#include "base/file.h"
#include "base/strings.h"
#include "service/trusted.h"

namespace wharf {
namespace {


int64_t WallNow() { return static_cast<int64_t>(::time(nullptr)); }

std::string KeyName(char key) {
  if (key == 0) return "(none)";
  if (key > 0 && key < 32) return std::string("^") + static_cast<char>(key + '@');
  return std::string(1, key);
}

// The folder of a runtime file, opened (and made) as service/trusted.h says.
Result<TrustedDir> FolderOf(const std::string& path) {
  auto dir = TrustedDir::Open(Dirname(path), true);
  if (!dir) return Prefix(path, dir.error());
  return dir;
}

Result<UniqueFd> Listen(const std::string& path, mode_t mode, const std::string& group) {
  gid_t gid = static_cast<gid_t>(-1);
  if (!group.empty()) {
    const struct group* gr = ::getgrnam(group.c_str());
    if (!gr) return Fail(ErrorCode::kInvalidArgument, "socket group " + group + ": no such group");
    gid = gr->gr_gid;
  }
  auto dir = FolderOf(path);
  if (!dir) return std::unexpected(dir.error());
  return dir->Listen(Basename(path), mode, gid);
}

struct Client {
  UniqueFd fd;
  bool read_only = false;
  std::string out;       // bytes not yet taken by the client: out[out_start...]
  size_t out_start = 0;  // taken from the front without moving the rest
  size_t Pending() const { return out.size() - out_start; }
};

// The last output, for whoever attaches and for the status file's last lines: a ring of
// fixed size, allocated at the first output (a server whose child is quiet never pays for
// it), into which the child's terminal is read directly (no copy, no other buffer).
class Ring {
 public:
  explicit Ring(size_t capacity) : capacity_(std::max<size_t>(capacity, 4096)) {}
  // Free room at the write position, up to the end of the ring and at most half of it: a
  // message added while a read's bytes are still being handed out never reaches them.
  char* Room(size_t& size) {
    if (!data_) data_ = std::make_unique_for_overwrite<char[]>(capacity_);
    size = std::min(capacity_ - head_, capacity_ / 2);
    return data_.get() + head_;
  }
  // The `n` bytes at Room() now hold output.
  void Commit(size_t n) {
    head_ = (head_ + n) % capacity_;
    size_ = std::min(size_ + n, capacity_);
  }
  void Append(std::string_view data) {
    while (!data.empty()) {
      size_t room = 0;
      char* at = Room(room);
      size_t n = std::min(room, data.size());
      std::memcpy(at, data.data(), n);
      Commit(n);
      data.remove_prefix(n);
    }
  }
  // The last `n` bytes (at most size()) as two pieces, oldest first.
  std::pair<std::string_view, std::string_view> Last(size_t n) const {
    n = std::min(n, size_);
    if (n == 0) return {};
    size_t start = (head_ + capacity_ - n) % capacity_;
    if (start < head_) return {std::string_view(data_.get() + start, n), {}};
    return {std::string_view(data_.get() + start, capacity_ - start), std::string_view(data_.get(), head_)};
  }
  size_t size() const { return size_; }

 private:
  size_t capacity_;
  std::unique_ptr<char[]> data_;
  size_t head_ = 0;  // where the next byte goes
  size_t size_ = 0;  // bytes held (up to capacity_)
};

struct ExitInfo {
  int code = -1;    // exit status, or -1
  int signal = 0;   // the signal that ended it, or 0
  int64_t time = 0;
};

class ProcServ {
 public:
  ProcServ(const ProcServOptions& options, const std::string& fingerprint)
      : o_(options), fingerprint_(fingerprint), mode_(options.mode), replay_(options.replay_bytes) {}

  int Run() {
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&signals, s);
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    signal_fd_ = UniqueFd(::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC));
    auto console = Listen(o_.console_socket, o_.socket_mode, o_.socket_group);
    if (!console) return Failed(console.error());
    console_ = std::move(*console);
    if (!o_.log_socket.empty()) {
      auto log = Listen(o_.log_socket, o_.socket_mode, o_.socket_group);
      if (!log) return Failed(log.error());
      log_listener_ = std::move(*log);
    }
    if (!o_.log_file.empty()) {
      auto dir = FolderOf(o_.log_file);
      if (!dir) return Failed(dir.error());
      log_dir_.emplace(std::move(*dir));
    }
    if (auto opened = OpenLog(); !opened) return Failed(opened.error());
    if (!o_.status_file.empty()) {
      auto dir = FolderOf(o_.status_file);
      if (!dir) return Failed(dir.error());
      status_dir_.emplace(std::move(*dir));
    }
    server_start_ = ProcessStartTicks(::getpid()).value_or(0);
    restart_at_ = MonotonicMs();
    for (;;) {
      if (restart_at_ >= 0 && MonotonicMs() >= restart_at_ && child_ < 0 && !stopping_) StartChild();
      if (stopping_ && child_ < 0) break;
      if (exit_after_child_ && child_ < 0) break;
      if ((stopping_ || child_stop_) && MonotonicMs() >= kill_at_ && child_ > 0 && !killed_) {
        Message("the child did not stop within " + std::to_string(o_.grace_seconds) + " s: SIGKILL");
        ::kill(child_, SIGKILL);
        killed_ = true;
      }
      Poll();
      RefreshStatusIfDue();
    }
    for (const auto& path : {o_.console_socket, o_.log_socket})
      if (!path.empty())
        if (auto dir = TrustedDir::Open(Dirname(path), false)) (void)dir->Remove(Basename(path));
    WriteStatus();
    return 0;
  }

 private:
  int Failed(const Error& error) {
    std::fprintf(stderr, "wharf-procserv: error: %s\n", error.message.c_str());
    return 1;
  }

  void Poll() {
    std::vector<pollfd> fds;
    fds.push_back({signal_fd_.get(), POLLIN, 0});
    fds.push_back({console_.get(), POLLIN, 0});
    fds.push_back({log_listener_.valid() ? log_listener_.get() : -1, POLLIN, 0});
    fds.push_back({master_.valid() ? master_.get() : -1, POLLIN, 0});
    size_t first_client = fds.size();
    for (const auto& c : clients_)
      fds.push_back({c->fd.get(), static_cast<short>(POLLIN | (c->Pending() ? POLLOUT : 0)), 0});
    int timeout = -1;
    int64_t now = MonotonicMs();
    if (restart_at_ >= 0 && child_ < 0) timeout = static_cast<int>(std::max<int64_t>(0, restart_at_ - now));
    if ((stopping_ || child_stop_) && child_ > 0 && !killed_)
      timeout = static_cast<int>(std::max<int64_t>(0, kill_at_ - now));
    if (status_dirty_) {
      int due = static_cast<int>(std::max<int64_t>(0, last_status_ms_ + 1000 - now));
      timeout = timeout < 0 ? due : std::min(timeout, due);
    }
    int ready = ::poll(fds.data(), fds.size(), timeout);
    if (ready <= 0) return;
    if (fds[0].revents) HandleSignals();
    if (fds[1].revents & POLLIN) Accept(console_.get(), false);
    if (fds[2].revents & POLLIN) Accept(log_listener_.get(), true);
    if (fds[3].revents) ReadChild();
    // Clients may be dropped while handled: walk the ones polled, by fd.
    std::vector<std::pair<int, short>> events;
    for (size_t i = first_client; i < fds.size(); ++i) events.emplace_back(fds[i].fd, fds[i].revents);
    for (auto [fd, revents] : events) {
      Client* client = Find(fd);
      if (!client || !revents) continue;
      if (revents & (POLLIN | POLLHUP | POLLERR)) ReadClient(*client);
      client = Find(fd);
      if (client && (revents & POLLOUT)) Flush(*client);
    }
  }

  Client* Find(int fd) {
    for (auto& c : clients_)
      if (c->fd.get() == fd) return c.get();
    return nullptr;
  }

  void Drop(Client& client) {
    std::erase_if(clients_, [&](const std::unique_ptr<Client>& c) { return c.get() == &client; });
    WriteStatus();
  }

  void HandleSignals() {
    signalfd_siginfo info;
    while (::read(signal_fd_.get(), &info, sizeof info) == sizeof info) {
      switch (info.ssi_signo) {
        case SIGCHLD: Reap(); break;
        case SIGHUP:
          if (auto opened = OpenLog(); !opened) Message("log file: " + opened.error().message);
          else Message("log file reopened (SIGHUP)");
          break;
        case SIGUSR1:  // stop the child and keep it stopped
          mode_ = RestartMode::kNoRestart;
          restart_at_ = -1;
          if (child_ > 0) StopChild("stop requested");
          WriteStatus();
          break;
        case SIGUSR2:  // start, or restart at once
          mode_ = o_.mode == RestartMode::kOneShot ? RestartMode::kRestart : o_.mode;
          if (child_ > 0) {
            restart_now_ = true;
            StopChild("restart requested");
          } else {
            Message("start requested");
            restart_at_ = MonotonicMs();
          }
          WriteStatus();
          break;
        default:  // SIGTERM, SIGINT
          if (!stopping_) {
            stopping_ = true;
            Message("stopping: sending signal " + std::to_string(o_.stop_signal) + " to the child");
            if (child_ > 0) ::kill(child_, o_.stop_signal);
            kill_at_ = MonotonicMs() + o_.grace_seconds * 1000;
            WriteStatus();
          }
      }
    }
  }

  void StopChild(const std::string& why) {
    Message(why + ": sending signal " + std::to_string(o_.stop_signal) + " to the child");
    ::kill(child_, o_.stop_signal);
    child_stop_ = true;
    killed_ = false;
    kill_at_ = MonotonicMs() + o_.grace_seconds * 1000;
  }

  void StartChild() {
    restart_at_ = -1;
    char real[PATH_MAX];
    std::string folder = o_.workdir.empty() ? "/" : o_.workdir;
    if (::realpath(folder.c_str(), real) == nullptr) {
      Message("cannot start: folder " + folder + " is missing (" + std::strerror(errno) + ")");
      ScheduleRestart();
      return;
    }
    resolved_dir_ = real;
    int master = -1;
    winsize size{24, 80, 0, 0};
    pid_t pid = ::forkpty(&master, nullptr, nullptr, &size);
    if (pid < 0) {
      Message(std::string("cannot start: forkpty: ") + std::strerror(errno));
      ScheduleRestart();
      return;
    }
    if (pid == 0) {
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      for (int s : {SIGPIPE, SIGCHLD, SIGTERM, SIGINT, SIGHUP}) ::signal(s, SIG_DFL);
      if (::chdir(resolved_dir_.c_str()) != 0) _exit(126);
      if (!o_.group.empty() || !o_.user.empty()) {
        const passwd* pw = o_.user.empty() ? nullptr : ::getpwnam(o_.user.c_str());
        const group* gr = o_.group.empty() ? nullptr : ::getgrnam(o_.group.c_str());
        if ((!o_.user.empty() && !pw) || (!o_.group.empty() && !gr)) {
          std::fprintf(stderr, "@@@ cannot run as %s:%s: no such user or group\r\n", o_.user.c_str(), o_.group.c_str());
          _exit(126);
        }
        gid_t gid = gr ? gr->gr_gid : pw->pw_gid;
        if ((pw && ::initgroups(pw->pw_name, gid) != 0) || ::setgid(gid) != 0 || (pw && ::setuid(pw->pw_uid) != 0)) {
          std::fprintf(stderr, "@@@ cannot run as %s:%s: %s (the agent must run as root)\r\n", o_.user.c_str(),
                       o_.group.c_str(), std::strerror(errno));
          _exit(126);
        }
      }
      for (const auto& kv : o_.env) ::putenv(const_cast<char*>(kv.c_str()));
      std::vector<char*> argv;
      for (const auto& a : o_.argv) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      std::fprintf(stderr, "@@@ cannot run %s: %s\r\n", argv[0], std::strerror(errno));
      _exit(127);
    }
    master_ = UniqueFd(master);
    ::fcntl(master, F_SETFL, ::fcntl(master, F_GETFL) | O_NONBLOCK);
    ::fcntl(master, F_SETFD, FD_CLOEXEC);
    child_ = pid;
    last_start_ms_ = MonotonicMs();
    started_ = WallNow();
    ++starts_;
    Message("started child, PID " + std::to_string(pid) + ", in " + resolved_dir_);
    WriteStatus();
  }

  void ScheduleRestart() {
    restart_at_ = std::max(MonotonicMs(), last_start_ms_ + o_.holdoff_seconds * 1000);
    WriteStatus();
  }

  void ReadChild() {
    for (;;) {
      size_t room = 0;
      char* at = replay_.Room(room);
      ssize_t n = ::read(master_.get(), at, room);
      if (n > 0) {
        replay_.Commit(static_cast<size_t>(n));
        Deliver(std::string_view(at, static_cast<size_t>(n)));
        if (static_cast<size_t>(n) < room) return;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      // EIO: every holder of the terminal has closed it; the child is gone or going.
      master_ = UniqueFd();
      return;
    }
  }

  void Reap() {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid != child_) continue;
      if (master_.valid()) ReadChild();  // what it wrote last
      master_ = UniqueFd();
      child_ = -1;
      killed_ = false;
      ExitInfo exit;
      exit.time = WallNow();
      if (WIFSIGNALED(status)) {
        exit.signal = WTERMSIG(status);
        Message("child PID " + std::to_string(pid) + " killed by signal " + std::to_string(exit.signal) +
                " (SIG" + sigabbrev_np(exit.signal) + ")");
      } else {
        exit.code = WEXITSTATUS(status);
        Message("child PID " + std::to_string(pid) + " exited with status " + std::to_string(exit.code));
      }
      last_exit_ = exit;
      child_stop_ = false;
      if (stopping_) continue;
      if (restart_now_) {
        restart_now_ = false;
        restart_at_ = MonotonicMs();
        WriteStatus();
        continue;
      }
      RestartMode mode = mode_;
      if (mode == RestartMode::kOnFailure) {
        mode = exit.signal == 0 && exit.code == 0 ? RestartMode::kNoRestart : RestartMode::kRestart;
        if (mode == RestartMode::kNoRestart) Message("exited cleanly; not restarting (mode on-failure)");
      }
      switch (mode) {
        case RestartMode::kOnFailure:
        case RestartMode::kRestart: {
          ScheduleRestart();
          int64_t wait = restart_at_ - MonotonicMs();
          Message(wait > 0 ? "restarting in " + std::to_string((wait + 999) / 1000) + " s (hold-off)"
                           : "restarting");
          break;
        }
        case RestartMode::kNoRestart:
          Message("not restarting (mode norestart); " + KeyName(o_.restart_key) + " starts it");
          break;
        case RestartMode::kOneShot:
          Message("mode oneshot: the process server ends");
          exit_after_child_ = true;
          break;
      }
      WriteStatus();
    }
  }

  void Accept(int listener, bool read_only) {
    for (;;) {
      int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      auto client = std::make_unique<Client>();
      client->fd = UniqueFd(fd);
      client->read_only = read_only;
      clients_.push_back(std::move(client));
      Client& c = *clients_.back();
      std::string banner = "@@@ wharf process server for " + o_.name + ", PID " + std::to_string(::getpid()) + "\r\n";
      banner += child_ > 0 ? "@@@ child PID " + std::to_string(child_) + " in " + resolved_dir_ + "\r\n"
                           : "@@@ child not running\r\n";
      banner += "@@@ " + std::to_string(Consoles()) + " console client(s) connected; mode " +
                RestartModeName(mode_) + "\r\n";
      if (!read_only)
        banner += "@@@ " + KeyName(o_.kill_key) + " kills the child, " + KeyName(o_.toggle_key) +
                  " toggles restart mode, " + KeyName(o_.restart_key) + " starts a stopped child\r\n";
      Send(c, banner);
      auto [older, newer] = replay_.Last(replay_.size());
      if (Find(fd)) Send(c, older);
      if (Find(fd)) Send(c, newer);
      WriteStatus();
    }
  }

  int Consoles() const {
    int n = 0;
    for (const auto& c : clients_) n += c->read_only ? 0 : 1;
    return n;
  }

  void ReadClient(Client& client) {
    char buf[4096];
    ssize_t n = ::read(client.fd.get(), buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      Drop(client);
      return;
    }
    if (n < 0 || client.read_only) return;
    std::string to_child;
    for (ssize_t i = 0; i < n; ++i) {
      char ch = buf[i];
      bool key = ch != 0 && (ch == o_.kill_key || ch == o_.toggle_key || ch == o_.restart_key);
      if (key) {
        if (ch == o_.kill_key) {
          if (child_ > 0) {
            Message(KeyName(ch) + ": killing the child (SIGKILL)");
            ::kill(child_, SIGKILL);
          }
        } else if (ch == o_.toggle_key) {
          mode_ = mode_ == RestartMode::kRestart || mode_ == RestartMode::kOnFailure ? RestartMode::kNoRestart
                  : mode_ == RestartMode::kNoRestart                                 ? RestartMode::kOneShot
                                                                                     : RestartMode::kRestart;
          Message(KeyName(ch) + ": mode is now " + RestartModeName(mode_));
          if (mode_ == RestartMode::kRestart && child_ < 0 && restart_at_ < 0) ScheduleRestart();
          if (mode_ != RestartMode::kRestart && child_ < 0) restart_at_ = -1;
          WriteStatus();
        } else if (ch == o_.restart_key) {
          if (child_ < 0) {
            Message(KeyName(ch) + ": starting the child");
            restart_at_ = MonotonicMs();
          }
        }
        if (o_.strip_keys) continue;
      }
      to_child += ch;
    }
    if (to_child.empty()) return;
    std::vector<Client*> others;
    for (auto& other : clients_)
      if (other.get() != &client && !other->read_only) others.push_back(other.get());
    for (Client* other : others) Send(*other, to_child);
    if (master_.valid()) (void)WriteAll(master_.get(), to_child.data(), to_child.size(), "pty");
  }

  // Straight to the socket when nothing is queued; what it does not take now is queued.
  // May drop the client.
  void Send(Client& client, std::string_view data) {
    if (data.empty()) return;
    if (!client.Pending()) {
      ssize_t n = ::send(client.fd.get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        Drop(client);
        return;
      }
      if (n > 0) data.remove_prefix(static_cast<size_t>(n));
      if (data.empty()) return;
    }
    if (client.Pending() + data.size() > o_.client_buffer_bytes) {
      Drop(client);  // it stopped reading: it must not hold up the child or the others
      return;
    }
    client.out.append(data);
  }

  void Flush(Client& client) {
    while (client.Pending()) {
      ssize_t n = ::send(client.fd.get(), client.out.data() + client.out_start, client.Pending(),
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        client.out_start += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        // Keep the queue from creeping: move the rest to the front once half is taken.
        if (client.out_start > client.out.size() / 2) {
          client.out.erase(0, client.out_start);
          client.out_start = 0;
        }
        return;
      }
      Drop(client);
      return;
    }
    // All taken: a queue that grew while the client lagged goes back to the heap.
    if (client.out.capacity() > 65536) std::string().swap(client.out);
    client.out.clear();
    client.out_start = 0;
  }

  // A message of the server: into the replay, then out like the child's output.
  void Output(std::string_view data) {
    replay_.Append(data);
    Deliver(data);
  }

  // Output already in the replay: to every client and the log.
  void Deliver(std::string_view data) {
    status_dirty_ = true;
    LogWrite(data);
    std::vector<Client*> all;
    for (auto& c : clients_) all.push_back(c.get());
    for (Client* c : all) Send(*c, data);
  }

  void Message(const std::string& text) { Output("@@@ " + text + "\r\n"); }

  // The status file's last lines follow the output, rewritten at most once a second.
  void RefreshStatusIfDue() {
    if (status_dirty_ && MonotonicMs() - last_status_ms_ >= 1000) WriteStatus();
  }

  Status OpenLog() {
    if (!log_dir_) return {};
    log_ = UniqueFd();
    auto opened = log_dir_->OpenAppend(Basename(o_.log_file), 0640);
    if (!opened) return std::unexpected(opened.error());
    log_ = std::move(*opened);
    struct stat st {};
    log_size_ = ::fstat(log_.get(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
    return {};
  }

  void Rotate() {
    log_ = UniqueFd();
    std::string name = Basename(o_.log_file);
    for (int i = o_.log_keep - 1; i >= 1; --i)
      (void)log_dir_->Rename(name + "." + std::to_string(i), name + "." + std::to_string(i + 1));
    if (o_.log_keep >= 1) (void)log_dir_->Rename(name, name + ".1");
    else (void)log_dir_->Remove(name);
    if (auto opened = OpenLog(); !opened) Message("log file: " + opened.error().message);
  }

  // Whole lines go to one file: rotation happens only at a line start, so no line is cut
  // or lost. The terminal's CR before each newline is left out. One writev for what a read
  // brought (not one write per line), from the read's own bytes.
  void LogWrite(std::string_view data) {
    if (!log_.valid()) return;
    std::string stamp = o_.log_timestamps ? FormatTime(WallNow()) + " " : std::string();
    iovec iov[64];
    int count = 0;
    uint64_t queued = 0;
    auto flush = [&] {
      if (count > 0 && WriteLog(iov, count)) log_size_ += queued;
      count = 0;
      queued = 0;
    };
    auto add = [&](const char* at, size_t size) {
      if (size == 0) return;
      queued += size;
      if (count > 0 && static_cast<const char*>(iov[count - 1].iov_base) + iov[count - 1].iov_len == at) {
        iov[count - 1].iov_len += size;  // the newline and the next line: one piece
        return;
      }
      if (count == 64) {
        queued -= size;
        flush();
        queued = size;
      }
      iov[count++] = {const_cast<char*>(at), size};
    };
    while (!data.empty()) {
      size_t newline = data.find('\n');
      size_t take = newline == std::string_view::npos ? data.size() : newline + 1;
      std::string_view piece = data.substr(0, take);
      data.remove_prefix(take);
      if (at_line_start_ && log_size_ + queued > 0 && log_size_ + queued + piece.size() > o_.log_max_bytes) {
        flush();
        Rotate();
        if (!log_.valid()) return;
      }
      if (at_line_start_) add(stamp.data(), stamp.size());
      if (piece.ends_with("\r\n")) {
        add(piece.data(), piece.size() - 2);
        add(piece.data() + piece.size() - 1, 1);
      } else {
        add(piece.data(), piece.size());
      }
      at_line_start_ = piece.ends_with('\n');
    }
    flush();
  }

  // Every byte of `iov` to the log, or false.
  bool WriteLog(iovec* iov, int count) {
    while (count > 0) {
      ssize_t n = ::writev(log_.get(), iov, count);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      size_t done = static_cast<size_t>(n);
      while (count > 0 && done >= iov->iov_len) {
        done -= iov->iov_len;
        ++iov;
        --count;
      }
      if (count > 0) {
        iov->iov_base = static_cast<char*>(iov->iov_base) + done;
        iov->iov_len -= done;
      }
    }
    return true;
  }

  void WriteStatus() {
    status_dirty_ = false;
    last_status_ms_ = MonotonicMs();
    if (!status_dir_) return;
    using nlohmann::ordered_json;
    ordered_json j;
    j["name"] = o_.name;
    j["state"] = stopping_ ? "stopping" : child_ > 0 ? "running" : restart_at_ >= 0 ? "holdoff" : "stopped";
    j["pid"] = child_ > 0 ? ordered_json(child_) : ordered_json(nullptr);
    j["server_pid"] = ::getpid();
    j["server_start"] = server_start_;  // with the PID, names this process (service/trusted.h)
    j["fingerprint"] = fingerprint_;    // what the supervisor started it for
    j["configuration"] = o_.configuration;  // the configuration versions it started with
    j["mode"] = RestartModeName(mode_);
    j["started"] = child_ > 0 ? ordered_json(FormatTime(started_)) : ordered_json(nullptr);
    j["restarts"] = std::max(0, starts_ - 1);
    if (last_exit_) {
      ordered_json e{{"time", FormatTime(last_exit_->time)}};
      e["code"] = last_exit_->code >= 0 ? ordered_json(last_exit_->code) : ordered_json(nullptr);
      e["signal"] = last_exit_->signal ? ordered_json(std::string("SIG") + sigabbrev_np(last_exit_->signal))
                                       : ordered_json(nullptr);
      j["last_exit"] = e;
    } else {
      j["last_exit"] = nullptr;
    }
    j["folder"] = resolved_dir_;
    j["command"] = o_.argv;
    j["console_clients"] = Consoles();
    j["console_socket"] = o_.console_socket;
    j["log_socket"] = o_.log_socket;
    j["log_file"] = o_.log_file;
    // The last lines of output, so that a crash loop explains itself.
    auto [older, newer] = replay_.Last(2048);
    std::string tail = std::string(older) + std::string(newer);
    std::vector<std::string> lines;
    for (auto& line : Split(tail, '\n')) {
      while (!line.empty() && (line.back() == '\r')) line.pop_back();
      if (!line.empty()) lines.push_back(line);
    }
    if (lines.size() > 10) lines.erase(lines.begin(), lines.end() - 10);
    j["last_lines"] = lines;
    (void)status_dir_->WriteAtomic(Basename(o_.status_file),
                                   j.dump(2, ' ', false, ordered_json::error_handler_t::replace) + "\n", 0644);
  }

  ProcServOptions o_;
  std::string fingerprint_;
  RestartMode mode_;
  UniqueFd signal_fd_, console_, log_listener_, master_, log_;
  std::optional<TrustedDir> log_dir_, status_dir_;  // the folders of the log and status files
  uint64_t server_start_ = 0;                       // this process's start time (ProcessStartTicks)
  std::vector<std::unique_ptr<Client>> clients_;
  Ring replay_;
  pid_t child_ = -1;
  int starts_ = 0;
  int64_t last_start_ms_ = INT64_MIN / 2;
  int64_t restart_at_ = -1;
  int64_t started_ = 0;
  int64_t kill_at_ = 0;
  bool stopping_ = false;
  bool killed_ = false;
  bool exit_after_child_ = false;
  bool child_stop_ = false;   // a stop of the child (not the server) is under way
  bool status_dirty_ = false;  // output since the status file was written
  int64_t last_status_ms_ = 0;
  bool restart_now_ = false;  // start again as soon as it has stopped
  std::optional<ExitInfo> last_exit_;
  std::string resolved_dir_;
  uint64_t log_size_ = 0;
  bool at_line_start_ = true;
};

}  // namespace

const char* RestartModeName(RestartMode mode) {
  switch (mode) {
    case RestartMode::kRestart: return "restart";
    case RestartMode::kNoRestart: return "norestart";
    case RestartMode::kOneShot: return "oneshot";
    case RestartMode::kOnFailure: return "on-failure";
  }
  return "?";
}

int RunProcServ(const ProcServOptions& options, const std::string& fingerprint) {
  ProcServ server(options, fingerprint);
  return server.Run();
}

}  // namespace wharf
