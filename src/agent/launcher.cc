// The launcher's process side: choosing the agent binary, running it as a delegate, and
// judging how it ends (launcher.h). The file side (verification, agent.json) is
// launcher_state.cc. Signal handlers only write to a self-pipe; all decisions are made in
// the loop, with the timing rules below as pure functions.
#include "agent/launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "agent/state.h"
#include "base/clock.h"
#include "base/file.h"
#include "crypto/sha256.h"

extern char** environ;

namespace wharf {

// ---- Timing rules --------------------------------------------------------------------

int64_t CrashBackoffMs(const LauncherTiming& timing, int crashes) {
  int64_t wait = timing.backoff_first_ms;
  for (int i = 1; i < crashes && wait < timing.backoff_max_ms; ++i) wait *= 2;
  return std::min(wait, timing.backoff_max_ms);
}

bool CrashLooping(const LauncherTiming& timing, std::vector<int64_t>& crash_times_ms, int64_t now_ms) {
  std::erase_if(crash_times_ms, [&](int64_t t) { return now_ms - t >= timing.crash_loop_window_ms; });
  return static_cast<int>(crash_times_ms.size()) >= timing.crash_loop_count;
}

int64_t HealthLeftMs(const LauncherTiming& timing, int64_t started_ms, int64_t now_ms) {
  return std::max<int64_t>(0, started_ms + timing.health_deadline_ms - now_ms);
}

namespace {

std::string Seconds(int64_t ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ms) / 1000.0);
  return text;
}

std::string WholeSeconds(int64_t ms) {
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : Seconds(ms);
}

}  // namespace

std::string DescribeEnd(bool exited, int code_or_signal, int64_t ran_ms) {
  std::string how;
  if (exited) {
    how = "exited with status " + std::to_string(code_or_signal);
  } else {
    const char* name = sigabbrev_np(code_or_signal);
    how = "was killed by signal " + std::to_string(code_or_signal) + (name ? " (SIG" + std::string(name) + ")" : "");
  }
  return how + " " + Seconds(ran_ms) + " after its start";
}

namespace {

// WHARF_AGENT_HEALTH_FD as a descriptor, -1 without it.
int HealthFd() {
  const char* text = std::getenv(kHealthFdEnv);
  if (!text || !*text) return -1;
  char* end = nullptr;
  long fd = std::strtol(text, &end, 10);
  if (*end != '\0' || fd < 3 || fd > 1 << 20) return -1;
  return static_cast<int>(fd);
}

std::atomic<bool> g_health_sent{false};

}  // namespace

void HoldHealthFd() {
  int fd = HealthFd();
  if (fd >= 0 && !g_health_sent) (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

void SignalHealthy() {
  if (g_health_sent.exchange(true)) return;
  int fd = HealthFd();
  if (fd < 0) return;
  UniqueFd owned(fd);
  (void)!::write(owned.get(), "ok\n", 3);
}

// ---- The launcher --------------------------------------------------------------------

namespace {

constexpr size_t kGoodKept = 3;
constexpr int kHealthFd = 3;  // the delegate's WHARF_AGENT_HEALTH_FD
constexpr size_t kRefusedKept = 16;

volatile sig_atomic_t g_signals = 0;      // stop signals received
volatile sig_atomic_t g_last_signal = 0;
int g_wake_fd = -1;                       // the self-pipe's write end

void OnSignal(int sig) {
  int saved = errno;
  if (sig != SIGCHLD) {
    g_last_signal = sig;
    g_signals = g_signals + 1;
  }
  char byte = 0;
  (void)!::write(g_wake_fd, &byte, 1);
  errno = saved;
}

// Installs the handlers and the self-pipe; puts back what was there on destruction.
class SignalScope {
 public:
  Status Install() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return IoError("pipe", "launcher self-pipe");
    read_ = UniqueFd(fds[0]);
    write_ = UniqueFd(fds[1]);
    g_wake_fd = write_.get();
    g_signals = 0;
    g_last_signal = 0;
    sigset_t ours;
    sigemptyset(&ours);
    for (int sig : kSignals) sigaddset(&ours, sig);
    ::sigprocmask(SIG_UNBLOCK, &ours, &mask_);
    struct sigaction action{};
    action.sa_handler = OnSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &action, &old_[i]);
    installed_ = true;
    return {};
  }
  ~SignalScope() {
    if (!installed_) return;
    for (size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &old_[i], nullptr);
    ::sigprocmask(SIG_SETMASK, &mask_, nullptr);
    g_wake_fd = -1;
  }
  int wake() const { return read_.get(); }
  void Drain() const {
    char buffer[64];
    while (::read(read_.get(), buffer, sizeof buffer) > 0) {
    }
  }
  /// The mask the launcher was started with: a delegate gets it back.
  const sigset_t& mask() const { return mask_; }

 private:
  static constexpr int kSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
  UniqueFd read_, write_;
  sigset_t mask_{};
  struct sigaction old_[std::size(kSignals)]{};
  bool installed_ = false;
};

struct Delegate {
  pid_t pid = -1;
  UniqueFd health;      // read end; invalid once "ok" came or the delegate closed it
  int64_t started_ms = 0;
  bool healthy = false;
};

// How a watch ended.
struct Ended {
  bool exited = true;
  int code = 0;         // exit status, or the signal
};

class Launcher {
 public:
  Launcher(const LauncherOptions& options, std::vector<std::string> args)
      : options_(options), layout_(options.root), args_(std::move(args)) {}

  int Run() {
    if (auto installed = signals_.Install(); !installed) {
      Log(installed.error().message);
      return 1;
    }
    boot_ = options_.boot_binary;
    // The installed path when it is still there (a package upgrade may have replaced it).
    if (auto resolved = ReadLink(boot_); resolved && boot_ == "/proc/self/exe" && !resolved->ends_with(" (deleted)"))
      boot_ = *resolved;
    state_ = ReadLauncherState(layout_);
    std::optional<AgentChoice> again;  // a crashed delegate to start again
    while (true) {
      if (g_signals) return 0;
      AgentChoice choice;
      bool trial = true;
      if (again) {
        choice = std::move(*again);
        again.reset();
        trial = false;
        if (choice.delivered) {
          if (auto verified = Verify(*choice.delivered); !verified) {
            Log(verified.error().message);
            std::erase(state_.good, *choice.delivered);
            Save();
            continue;  // choose again: it fails verification there too
          }
        }
      } else {
        choice = Choose();
        // Only a build not yet seen healthy is on trial: the boot binary and a delivered
        // build that was healthy before are not stopped for a late sign of health (a
        // server that is away must not make the agent start over every deadline).
        trial = !choice.boot && !(choice.delivered && std::ranges::find(state_.good, *choice.delivered) != state_.good.end());
      }
      if (choice.boot && choice.sha256.empty())
        if (auto digest = Sha256File(choice.path)) choice.sha256 = digest->sha256;
      state_.current = choice;
      Save();
      auto started = Start(choice);
      if (!started) {
        // No pipe, no fork: the system's trouble, not the binary's (one that cannot be
        // executed exits 127 in the child and is judged as it should be).
        Log(started.error().message + "; trying again in " + Seconds(options_.timing.backoff_first_ms));
        if (!Pause(options_.timing.backoff_first_ms)) return 0;
        continue;
      }
      Delegate delegate = std::move(*started);
      Log("started " + Describe(choice) + (trial ? " on trial" : " again") + " (pid " +
          std::to_string(delegate.pid) + ")");
      std::string why;  // set when the launcher stopped it
      bool forwarded = false;
      Ended ended = Watch(delegate, choice, trial, why, forwarded);
      int64_t ran = MonotonicMs() - delegate.started_ms;
      if (forwarded) {
        // Asked to stop: the delegate's end is the launcher's (a death by the very signal
        // forwarded is a clean stop).
        if (ended.exited) return ended.code;
        return ended.code == g_last_signal ? 0 : 128 + ended.code;
      }
      bool stopped = !why.empty();  // by the launcher: however it ended, it failed
      if (!stopped && ended.exited && ended.code == 0) return 0;
      if (!stopped && ended.exited && ended.code == kAgentExitNewAgent) {
        Log(Describe(choice) + " applied a generation that names another agent: choosing again");
        crashes_.clear();
        continue;
      }
      if (why.empty()) why = DescribeEnd(ended.exited, ended.code, ran);
      if (!Failed(choice, trial && !delegate.healthy, why, again)) return 0;
    }
  }

 private:
  void Log(const std::string& message) {
    if (options_.log) options_.log(message);
    else std::fprintf(stderr, "wharf-agent launcher: %s\n", message.c_str());
  }

  void Save() {
    if (auto saved = WriteLauncherState(layout_, state_); !saved) Log(saved.error().message);
  }

  Status Verify(const DeliveredAgent& agent) {
    return options_.verify ? options_.verify(agent) : VerifyDeliveredAgent(agent);
  }

  static std::string Describe(const AgentChoice& choice) {
    return choice.boot ? "the boot binary " + choice.path : std::string(kAgentPackage) + " " + choice.version;
  }

  bool Refused(const std::string& sha256) const {
    return std::any_of(state_.refused.begin(), state_.refused.end(),
                       [&](const RefusedAgent& r) { return r.sha256 == sha256; });
  }

  Result<std::optional<DeliveredAgent>> FindDelivered() {
    if (options_.find_delivered) return options_.find_delivered();
    auto active = ReadActive(layout_);
    if (!active) return std::unexpected(active.error());
    if (!*active) return std::optional<DeliveredAgent>();
    return FindDeliveredAgent(layout_, (*active)->generation);
  }

  static AgentChoice FromDelivered(const DeliveredAgent& agent) {
    return AgentChoice{agent.version, agent.path, agent.sha256, false, agent};
  }

  // The generation's agent when verified and not refused, else the newest good one still
  // verified and not refused, else the boot binary. Every delivered candidate is verified
  // here, just before it starts.
  AgentChoice Choose() {
    auto delivered = FindDelivered();
    if (!delivered) {
      state_.note = delivered.error().message;
      Log(state_.note);
    } else {
      state_.note.clear();
      std::string named = *delivered ? (*delivered)->sha256 : "";
      if (named != state_.named_sha256) {
        // A generation names another agent: earlier refusals are forgotten (a refused
        // binary is never tried again until then).
        state_.refused.clear();
        state_.named_sha256 = named;
        state_.named_version = *delivered ? (*delivered)->version : "";
      }
      if (*delivered) {
        if (!Refused((*delivered)->sha256)) return FromDelivered(**delivered);
        Log(std::string(kAgentPackage) + " " + (*delivered)->version + " was refused; not trying it again");
      }
    }
    for (size_t i = 0; i < state_.good.size();) {
      const DeliveredAgent& good = state_.good[i];
      if (Refused(good.sha256)) {
        ++i;
        continue;
      }
      if (auto verified = Verify(good); !verified) {
        Log(verified.error().message);
        state_.good.erase(state_.good.begin() + static_cast<std::ptrdiff_t>(i));
        continue;
      }
      return FromDelivered(good);
    }
    return AgentChoice{"", boot_, "", true, std::nullopt};
  }

  // Until the delegate ends: stop signals forwarded (then no deadline), its health read,
  // and stopped when on `trial` past the deadline (`why` says so).
  Ended Watch(Delegate& delegate, const AgentChoice& choice, bool trial, std::string& why, bool& forwarded) {
    int seen = 0;
    while (true) {
      if (g_signals != seen) {
        seen = g_signals;
        forwarded = true;
        ::kill(delegate.pid, g_last_signal);
      }
      int status = 0;
      if (::waitpid(delegate.pid, &status, WNOHANG) == delegate.pid)
        return WIFEXITED(status) ? Ended{true, WEXITSTATUS(status)} : Ended{false, WTERMSIG(status)};
      int timeout = -1;
      if (trial && !delegate.healthy && !forwarded) {
        int64_t left = HealthLeftMs(options_.timing, delegate.started_ms, MonotonicMs());
        if (left == 0) {
          why = "sent no sign of health within " + WholeSeconds(options_.timing.health_deadline_ms);
          Log(Describe(choice) + " " + why + "; stopping it");
          return Stop(delegate);
        }
        timeout = static_cast<int>(std::min<int64_t>(left, 60'000));
      }
      pollfd fds[2] = {{signals_.wake(), POLLIN, 0}, {delegate.health.get(), POLLIN, 0}};
      ::poll(fds, delegate.health.valid() ? 2 : 1, timeout);
      signals_.Drain();
      if (delegate.health.valid() && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) ReadHealth(delegate, choice);
    }
  }

  Result<Delegate> Start(const AgentChoice& choice) {
    const std::string& sha256 = choice.sha256;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return IoError("pipe", "health of " + choice.path);
    UniqueFd read_end(fds[0]), write_end(fds[1]);
    (void)::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);

    std::vector<std::string> argv_text = {choice.path, "run", "--delegate"};
    argv_text.insert(argv_text.end(), args_.begin(), args_.end());
    std::vector<std::string> env_text;
    for (char** e = environ; e && *e; ++e) {
      std::string_view entry(*e);
      // Ours are set below; systemd's WATCHDOG_PID names the launcher, so a delegate that
      // honours it would never ping: without it, the pings are the delegate's to send.
      if (entry.starts_with(std::string(kHealthFdEnv) + "=") || entry.starts_with(std::string(kAgentSha256Env) + "=") ||
          entry.starts_with("WATCHDOG_PID="))
        continue;
      env_text.emplace_back(entry);
    }
    env_text.push_back(std::string(kHealthFdEnv) + "=" + std::to_string(kHealthFd));
    env_text.push_back(std::string(kAgentSha256Env) + "=" + sha256);
    std::vector<char*> argv, envp;
    for (auto& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);

    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) return IoError("fork", choice.path);
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) _exit(1);  // the launcher died before the line above
      ::sigprocmask(SIG_SETMASK, &signals_.mask(), nullptr);
      // The one descriptor the delegate inherits, always as 3 (dup2 clears close-on-exec).
      if (write_end.get() == kHealthFd) ::fcntl(kHealthFd, F_SETFD, 0);
      else if (::dup2(write_end.get(), kHealthFd) < 0) _exit(127);
      ::execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    Delegate delegate;
    delegate.pid = pid;
    delegate.health = std::move(read_end);
    delegate.started_ms = MonotonicMs();
    return delegate;
  }

  void ReadHealth(Delegate& delegate, const AgentChoice& choice) {
    char buffer[16];
    ssize_t got = ::read(delegate.health.get(), buffer, sizeof buffer);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
    delegate.health = UniqueFd();  // one message, or the end: nothing more to read
    if (got >= 2 && std::string_view(buffer, 2) == "ok") {
      delegate.healthy = true;
      Log(Describe(choice) + " is healthy after " + Seconds(MonotonicMs() - delegate.started_ms));
      if (choice.delivered) {
        std::erase(state_.good, *choice.delivered);
        state_.good.insert(state_.good.begin(), *choice.delivered);
        if (state_.good.size() > kGoodKept) state_.good.resize(kGoodKept);
        Save();
      }
    }
  }

  // SIGTERM, then SIGKILL after the grace; waits for the end.
  Ended Stop(Delegate& delegate) {
    ::kill(delegate.pid, SIGTERM);
    int64_t deadline = MonotonicMs() + options_.timing.stop_grace_ms;
    int status = 0;
    while (::waitpid(delegate.pid, &status, WNOHANG) == 0) {
      if (MonotonicMs() >= deadline) {
        ::kill(delegate.pid, SIGKILL);
        ::waitpid(delegate.pid, &status, 0);
        break;
      }
      ::poll(nullptr, 0, 20);
    }
    return WIFEXITED(status) ? Ended{true, WEXITSTATUS(status)} : Ended{false, WTERMSIG(status)};
  }

  void Refuse(const AgentChoice& choice, const std::string& why) {
    Log("refusing " + Describe(choice) + ": it " + why);
    state_.refused.push_back({choice.sha256, choice.version, why, SystemClock().Now()});
    if (state_.refused.size() > kRefusedKept) state_.refused.erase(state_.refused.begin());
    if (choice.delivered) std::erase(state_.good, *choice.delivered);
    Save();
  }

  // A delegate that failed: on trial, refused (the boot binary is retried instead); after
  // it was healthy, started again after a back-off, refused once it crash-loops. Fills
  // `again` when the same binary is to start again. False when the launcher must stop
  // (asked to during the back-off).
  bool Failed(const AgentChoice& choice, bool trial, const std::string& why, std::optional<AgentChoice>& again) {
    if (trial && !choice.boot) {
      Refuse(choice, why);
      return true;
    }
    int64_t now = MonotonicMs();
    crashes_.push_back(now);
    if (CrashLooping(options_.timing, crashes_, now) && !choice.boot) {
      Refuse(choice, "crashed " + std::to_string(crashes_.size()) + " times within " +
                         WholeSeconds(options_.timing.crash_loop_window_ms) + " (last: " + why + ")");
      crashes_.clear();
      return true;
    }
    int64_t wait = CrashBackoffMs(options_.timing, static_cast<int>(crashes_.size()));
    Log(Describe(choice) + " " + why + "; starting it again in " + Seconds(wait));
    if (!Pause(wait)) return false;
    again = choice;
    return true;
  }

  // Waits `ms`; false when a stop signal came meanwhile.
  bool Pause(int64_t ms) {
    int64_t until = MonotonicMs() + ms;
    while (!g_signals) {
      int64_t left = until - MonotonicMs();
      if (left <= 0) break;
      pollfd fd = {signals_.wake(), POLLIN, 0};
      ::poll(&fd, 1, static_cast<int>(left));
      signals_.Drain();
    }
    return !g_signals;
  }

  const LauncherOptions& options_;
  Layout layout_;
  std::vector<std::string> args_;
  SignalScope signals_;
  std::string boot_;
  LauncherState state_;
  std::vector<int64_t> crashes_;
};

}  // namespace

int RunLauncher(const LauncherOptions& options, int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 2; i < argc; ++i) args.emplace_back(argv[i]);
  return Launcher(options, std::move(args)).Run();
}

}  // namespace wharf
