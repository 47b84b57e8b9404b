// The FEC daemon behind `wharf-agent run`. One loop supervises: it looks at the process
// servers every tick, pings systemd's watchdog, sends heartbeats and decides when to sync
// or snapshot. The slow work (a sync, a snapshot, the boot scripts) runs on a worker thread
// beside it, so that a 30-minute download never delays a restart, a heartbeat or a ping.
//
// The loop sees the world through two seams: DaemonHost (what it does: supervise, start
// work, heartbeat, notify) and DaemonEvents (what happens: a tick, work done, a stop), with
// the time given to every call. Tests drive it with fakes and a fake clock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "base/file.h"

namespace wharf {

/// The restart policy of a process server that ended, a pure function: when it may start
/// again. Never sooner than `holdoff_seconds` (at least kMinHoldoffSeconds) after its last
/// start; each further quick death in a row (one that came before a minute of running)
/// doubles the wait, up to kMaxBackoffSeconds, so a crash loop costs little.
inline constexpr int kMinHoldoffSeconds = 1;
inline constexpr int kMaxBackoffSeconds = 300;
int64_t RestartAtMs(int64_t last_start_ms, int holdoff_seconds, int quick_deaths);
/// Whether a process server that ran from `started_ms` to `ended_ms` died young.
bool DiedYoung(int64_t started_ms, int64_t ended_ms);

struct DaemonTimings {
  int64_t sync_interval_ms = 60'000;
  int64_t heartbeat_interval_ms = 30'000;  // 0: no heartbeats
  int64_t watchdog_ms = 0;                 // 0: no watchdog; else a ping at least this often
  int64_t tick_ms = 1'000;                 // process servers are looked at this often
  int64_t snapshot_retry_ms = 60'000;      // a failed snapshot is tried again this soon
  int64_t verify_interval_ms = 0;          // installed files re-hashed this often; 0: never
};

enum class Work { kBoot, kSync, kSnapshot, kVerify };
const char* WorkName(Work work);

struct WorkOutcome {
  Work work = Work::kSync;
  bool applied = false;    // a sync switched to a new generation
  bool new_agent = false;  // ... which names another wharf-agent build than the one running
  std::string error;       // one line; "" when all went well
};

/// What the daemon does. The real one is in the CLI; tests give a fake.
class DaemonHost {
 public:
  virtual ~DaemonHost() = default;
  /// Whether boot work (persistent data to restore, boot scripts not yet run since this
  /// machine booted) must come before the services start.
  virtual bool BootWorkNeeded() = 0;
  /// Starts `work` in the background; it ends with a DaemonEvent::kWorkDone.
  virtual void StartWork(Work work) = 0;
  /// Looks at the process servers and starts those due (restart policy); with `reconcile`,
  /// first makes them match the active generation (start, stop, restart what changed).
  virtual void Supervise(bool reconcile) = 0;
  /// The snapshot interval of the active generation; 0 when it declares no persistent data.
  virtual int64_t SnapshotIntervalMs() = 0;
  /// Sends a heartbeat without waiting for it. `activity`: "syncing: N of M bytes" or "".
  virtual void Heartbeat(const std::string& error, const std::string& activity) = 0;
  /// What the running work is at, for heartbeats ("" when none).
  virtual std::string Activity() = 0;
  /// systemd's notify protocol (a no-op outside systemd).
  virtual void Notify(const std::string& state) = 0;
  /// The daemon is healthy: its services are started and a first heartbeat went out (or
  /// none is configured). Called once.
  virtual void Healthy() = 0;
  /// On a stop: stops every service when configured to, then takes the final snapshot.
  virtual void Shutdown() = 0;
};

struct DaemonEvent {
  enum Kind { kTick, kWorkDone, kStop } kind = kTick;
  WorkOutcome outcome;  // kWorkDone
};

/// What happens, waited for with a deadline.
class DaemonEvents {
 public:
  virtual ~DaemonEvents() = default;
  /// The next event, or kTick when `timeout_ms` passed first.
  virtual DaemonEvent Wait(int64_t timeout_ms) = 0;
};

/// The daemon's exit codes beyond 0 (stopped by a signal).
inline constexpr int kDaemonExitNewAgent = 75;  // a generation delivered another agent build

class Daemon {
 public:
  Daemon(DaemonTimings timings, DaemonHost& host, DaemonEvents& events, std::function<int64_t()> clock_ms)
      : timings_(timings), host_(host), events_(events), clock_ms_(std::move(clock_ms)) {}

  /// Runs until a stop; returns the exit code.
  int Run();

  // The loop's steps, for tests.
  void Start(int64_t now);
  /// Handles one event; the exit code when the daemon is done.
  std::optional<int> Handle(const DaemonEvent& event, int64_t now);
  /// How long the loop may wait for the next event.
  int64_t WaitMs(int64_t now) const;

  bool ready() const { return ready_; }
  bool busy() const { return working_.has_value(); }
  const std::string& last_error() const { return last_error_; }

 private:
  void Tick(int64_t now);
  void BeReady(int64_t now);
  void Beat(int64_t now);

  DaemonTimings timings_;
  DaemonHost& host_;
  DaemonEvents& events_;
  std::function<int64_t()> clock_ms_;
  std::optional<Work> working_;
  bool ready_ = false;
  bool healthy_ = false;
  bool stopping_ = false;
  int64_t next_sync_ = 0, next_beat_ = 0, next_snapshot_ = 0, next_watchdog_ = 0, next_tick_ = 0;
  std::string last_error_;      // of the last sync
  std::string snapshot_error_;  // of the last snapshot
  std::string drift_;           // what the last verify found ("" when the files are as signed)
  int64_t next_verify_ = 0;
};

/// One background job at a time, on its own thread; its end is written to an eventfd that
/// SignalEvents waits on.
class Worker {
 public:
  Worker();
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Runs `job` on the worker thread; false when one is still running.
  bool Post(std::function<WorkOutcome()> job);
  bool busy() const { return busy_; }
  /// The outcome of the job that ended, if one did (and clears the eventfd).
  std::optional<WorkOutcome> Take();
  int fd() const { return event_.get(); }

 private:
  void Loop();
  UniqueFd event_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::function<WorkOutcome()> job_;
  std::optional<WorkOutcome> done_;
  std::atomic<bool> busy_{false};
  bool quit_ = false;
  std::thread thread_;
};

/// The real events: SIGTERM/SIGINT (blocked in every thread, read from a signalfd) and the
/// worker's eventfd. Construct before any thread starts, so that the mask is inherited.
class SignalEvents : public DaemonEvents {
 public:
  SignalEvents();
  void Watch(Worker& worker) { worker_ = &worker; }
  DaemonEvent Wait(int64_t timeout_ms) override;

 private:
  UniqueFd signals_;
  Worker* worker_ = nullptr;
};

}  // namespace wharf
