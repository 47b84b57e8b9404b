#include "agent/daemon.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

namespace wharf {

int64_t RestartAtMs(int64_t last_start_ms, int holdoff_seconds, int quick_deaths) {
  int64_t holdoff = int64_t{std::max(holdoff_seconds, kMinHoldoffSeconds)} * 1000;
  int64_t wait = holdoff;
  for (int i = 1; i < quick_deaths && wait < int64_t{kMaxBackoffSeconds} * 1000; ++i) wait *= 2;
  return last_start_ms + std::max(holdoff, std::min<int64_t>(wait, int64_t{kMaxBackoffSeconds} * 1000));
}

bool DiedYoung(int64_t started_ms, int64_t ended_ms) { return ended_ms - started_ms < 60'000; }

const char* WorkName(Work work) {
  switch (work) {
    case Work::kBoot: return "boot";
    case Work::kSync: return "sync";
    case Work::kSnapshot: return "snapshot";
    case Work::kVerify: return "verify";
  }
  return "?";
}

void Daemon::Start(int64_t now) {
  next_sync_ = now;
  next_beat_ = now;
  next_watchdog_ = now;
  next_tick_ = now;
  next_verify_ = now + timings_.verify_interval_ms;
  // Boot work (data to restore, boot scripts) comes before the services it prepares; an
  // agent started again on a running FEC has none, and adopts its services at once.
  if (host_.BootWorkNeeded()) {
    working_ = Work::kBoot;
    host_.StartWork(Work::kBoot);
  } else {
    BeReady(now);
  }
  Tick(now);
}

void Daemon::BeReady(int64_t now) {
  host_.Supervise(true);
  next_tick_ = now + timings_.tick_ms;
  ready_ = true;
  host_.Notify("READY=1\nSTATUS=services started; syncing every " +
               std::to_string(timings_.sync_interval_ms / 1000) + " s");
  host_.Healthy();
}

void Daemon::Beat(int64_t now) {
  std::string error = !last_error_.empty() ? last_error_ : !snapshot_error_.empty() ? snapshot_error_ : drift_;
  host_.Heartbeat(error, working_ == Work::kSync ? host_.Activity() : "");
  next_beat_ = now + timings_.heartbeat_interval_ms;
}

void Daemon::Tick(int64_t now) {
  // The watchdog hears from the loop itself: as long as it goes round, whatever the work.
  if (timings_.watchdog_ms > 0 && now >= next_watchdog_) {
    host_.Notify(ready_ ? "WATCHDOG=1" : "WATCHDOG=1\nEXTEND_TIMEOUT_USEC=" +
                                             std::to_string(std::max<int64_t>(timings_.watchdog_ms, 30'000) * 2000));
    next_watchdog_ = now + timings_.watchdog_ms;
  }
  if (!ready_) {
    if (now >= next_tick_) {
      // Boot work can take long on a slow first boot: systemd's start timeout must not end it.
      host_.Notify("EXTEND_TIMEOUT_USEC=60000000");
      next_tick_ = now + 20'000;
    }
    return;
  }
  if (now >= next_tick_) {
    host_.Supervise(false);
    next_tick_ = now + timings_.tick_ms;
  }
  if (!working_) {
    if (now >= next_sync_) {
      working_ = Work::kSync;
      host_.StartWork(Work::kSync);
    } else if (int64_t interval = host_.SnapshotIntervalMs(); interval > 0) {
      // A snapshot one interval after start (the data restored or left by the last stop is
      // stored already), then every interval.
      if (next_snapshot_ == 0 || next_snapshot_ > now + interval) next_snapshot_ = now + interval;
      if (now >= next_snapshot_) {
        working_ = Work::kSnapshot;
        host_.StartWork(Work::kSnapshot);
      }
    } else {
      next_snapshot_ = 0;
    }
    // The installed files re-hashed against their signed indexes, when nothing else runs.
    if (!working_ && timings_.verify_interval_ms > 0 && now >= next_verify_) {
      working_ = Work::kVerify;
      host_.StartWork(Work::kVerify);
    }
  }
  if (timings_.heartbeat_interval_ms > 0 && now >= next_beat_) Beat(now);
}

std::optional<int> Daemon::Handle(const DaemonEvent& event, int64_t now) {
  switch (event.kind) {
    case DaemonEvent::kStop:
      stopping_ = true;
      host_.Notify("STOPPING=1");
      host_.Shutdown();
      return 0;
    case DaemonEvent::kWorkDone: {
      const WorkOutcome& outcome = event.outcome;
      working_.reset();
      switch (outcome.work) {
        case Work::kBoot:
          last_error_ = outcome.error;
          BeReady(now);
          break;
        case Work::kSync:
          last_error_ = outcome.error;
          next_sync_ = now + timings_.sync_interval_ms;
          // A new agent build takes over the running services as they are.
          if (outcome.new_agent) return kDaemonExitNewAgent;
          if (outcome.error.empty()) drift_.clear();  // a sync repairs the packages it finds changed
          host_.Supervise(true);
          next_beat_ = now;  // the server hears of the sync at once
          break;
        case Work::kVerify:
          drift_ = outcome.error;
          next_verify_ = now + timings_.verify_interval_ms;
          break;
        case Work::kSnapshot:
          snapshot_error_ = outcome.error;
          next_snapshot_ = now + (outcome.error.empty() ? std::max<int64_t>(host_.SnapshotIntervalMs(), 1000)
                                                        : timings_.snapshot_retry_ms);
          break;
      }
      break;
    }
    case DaemonEvent::kTick:
      break;
  }
  Tick(now);
  return std::nullopt;
}

int64_t Daemon::WaitMs(int64_t now) const {
  int64_t wake = next_tick_;
  if (timings_.watchdog_ms > 0) wake = std::min(wake, next_watchdog_);
  if (ready_) {
    if (timings_.heartbeat_interval_ms > 0) wake = std::min(wake, next_beat_);
    if (!working_) {
      wake = std::min(wake, next_sync_);
      if (next_snapshot_ > 0) wake = std::min(wake, next_snapshot_);
      if (timings_.verify_interval_ms > 0) wake = std::min(wake, next_verify_);
    }
  }
  return std::clamp<int64_t>(wake - now, 0, std::max<int64_t>(timings_.tick_ms, 1));
}

int Daemon::Run() {
  Start(clock_ms_());
  for (;;) {
    DaemonEvent event = events_.Wait(WaitMs(clock_ms_()));
    if (auto code = Handle(event, clock_ms_())) return *code;
  }
}

// --- the worker thread ---

Worker::Worker() : event_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  thread_ = std::thread([this] { Loop(); });
}

Worker::~Worker() {
  {
    std::lock_guard lock(mutex_);
    quit_ = true;
  }
  wake_.notify_all();
  // A job still running (a download a stop cut short) is left to the process's exit: the
  // work is crash-safe by design, and waiting for it would hold up the stop.
  if (busy_) thread_.detach();
  else thread_.join();
}

bool Worker::Post(std::function<WorkOutcome()> job) {
  std::lock_guard lock(mutex_);
  if (busy_) return false;
  busy_ = true;
  job_ = std::move(job);
  wake_.notify_all();
  return true;
}

void Worker::Loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return quit_ || job_; });
    if (quit_) return;
    auto job = std::move(job_);
    job_ = nullptr;
    lock.unlock();
    WorkOutcome outcome = job();
    lock.lock();
    done_ = std::move(outcome);
    busy_ = false;
    uint64_t one = 1;
    (void)!::write(event_.get(), &one, sizeof one);
  }
}

std::optional<WorkOutcome> Worker::Take() {
  uint64_t count = 0;
  (void)!::read(event_.get(), &count, sizeof count);
  std::lock_guard lock(mutex_);
  auto done = std::move(done_);
  done_.reset();
  return done;
}

// --- the real events ---

SignalEvents::SignalEvents() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signals_ = UniqueFd(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
}

DaemonEvent SignalEvents::Wait(int64_t timeout_ms) {
  pollfd fds[2] = {{signals_.get(), POLLIN, 0}, {worker_ ? worker_->fd() : -1, POLLIN, 0}};
  int ready = ::poll(fds, 2, static_cast<int>(std::min<int64_t>(timeout_ms, INT_MAX)));
  if (ready <= 0) return {};
  if (fds[0].revents) {
    signalfd_siginfo info{};
    if (::read(signals_.get(), &info, sizeof info) == sizeof info) return {DaemonEvent::kStop, {}};
  }
  if (fds[1].revents && worker_) {
    if (auto done = worker_->Take()) return {DaemonEvent::kWorkDone, std::move(*done)};
  }
  return {};
}

}  // namespace wharf
