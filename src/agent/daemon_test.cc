// The daemon's timing with a fake host and a fake clock: what it does when, never waiting.
#include "agent/daemon.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace wharf {
namespace {

class FakeHost : public DaemonHost {
 public:
  bool boot_needed = false;
  int64_t snapshot_interval_ms = 0;
  std::vector<Work> started;
  int reconciles = 0, checks = 0, healthy = 0, shutdowns = 0;
  std::vector<std::string> beats, notes;

  bool BootWorkNeeded() override { return boot_needed; }
  void StartWork(Work work) override { started.push_back(work); }
  void Supervise(bool reconcile) override { ++(reconcile ? reconciles : checks); }
  int64_t SnapshotIntervalMs() override { return snapshot_interval_ms; }
  void Heartbeat(const std::string& error, const std::string& activity) override {
    beats.push_back(error + "|" + activity);
  }
  std::string Activity() override { return "syncing: 5 of 10 bytes"; }
  void Notify(const std::string& state) override { notes.push_back(state); }
  void Healthy() override { ++healthy; }
  void Shutdown() override { ++shutdowns; }

  int Count(const std::string& prefix) const {
    int n = 0;
    for (const auto& note : notes) n += note.starts_with(prefix);
    return n;
  }
};

class NoEvents : public DaemonEvents {
 public:
  DaemonEvent Wait(int64_t) override { return {}; }
};

DaemonTimings Timings() {
  DaemonTimings t;
  t.sync_interval_ms = 60'000;
  t.heartbeat_interval_ms = 10'000;
  t.watchdog_ms = 5'000;
  t.tick_ms = 1'000;
  t.snapshot_retry_ms = 30'000;
  return t;
}

struct Fixture {
  FakeHost host;
  NoEvents events;
  int64_t now = 1'000'000;
  Daemon daemon{Timings(), host, events, [this] { return now; }};

  // Advances the fake clock as the real loop would: waking when the daemon asks to.
  void RunFor(int64_t ms) {
    int64_t end = now + ms;
    while (now < end) {
      now = std::min(end, now + std::max<int64_t>(daemon.WaitMs(now), 1));
      ASSERT_FALSE(daemon.Handle({}, now).has_value());
    }
  }
  void Done(Work work, std::string error = "", bool applied = false, bool new_agent = false) {
    DaemonEvent event{DaemonEvent::kWorkDone, {work, applied, new_agent, std::move(error)}};
    last_code = daemon.Handle(event, now);
  }
  std::optional<int> last_code;
};

TEST(RestartPolicy, HoldoffFromTheLastStartThenDoublingForACrashLoop) {
  EXPECT_EQ(RestartAtMs(1000, 15, 0), 16'000);
  EXPECT_EQ(RestartAtMs(1000, 15, 1), 16'000);
  EXPECT_EQ(RestartAtMs(1000, 15, 2), 31'000);
  EXPECT_EQ(RestartAtMs(1000, 15, 3), 61'000);
  EXPECT_EQ(RestartAtMs(1000, 15, 50), 1000 + kMaxBackoffSeconds * 1000);
  EXPECT_EQ(RestartAtMs(1000, 0, 0), 1000 + kMinHoldoffSeconds * 1000);  // never at once
  EXPECT_EQ(RestartAtMs(0, 900, 5), 900'000);  // a hold-off longer than the cap is kept
  EXPECT_TRUE(DiedYoung(0, 59'999));
  EXPECT_FALSE(DiedYoung(0, 60'000));
}

TEST(Daemon, ReadyAtOnceWithoutBootWorkAndTheFirstSyncStartsAfterTheServices) {
  Fixture f;
  f.daemon.Start(f.now);
  EXPECT_TRUE(f.daemon.ready());
  EXPECT_EQ(f.host.reconciles, 1);
  EXPECT_EQ(f.host.healthy, 1);
  ASSERT_FALSE(f.host.notes.empty());
  EXPECT_EQ(f.host.Count("READY=1"), 1);
  ASSERT_EQ(f.host.started.size(), 1u);
  EXPECT_EQ(f.host.started[0], Work::kSync);
}

TEST(Daemon, BootWorkComesBeforeTheServicesAndKeepsSystemdWaiting) {
  Fixture f;
  f.host.boot_needed = true;
  f.daemon.Start(f.now);
  EXPECT_FALSE(f.daemon.ready());
  EXPECT_EQ(f.host.reconciles, 0);
  ASSERT_EQ(f.host.started, std::vector<Work>{Work::kBoot});
  f.RunFor(65'000);  // a slow boot: restore over a slow link
  EXPECT_EQ(f.host.Count("READY=1"), 0);
  EXPECT_GE(f.host.Count("EXTEND_TIMEOUT_USEC="), 3);  // the start timeout is pushed on
  EXPECT_GE(f.host.Count("WATCHDOG=1"), 12);
  EXPECT_EQ(f.host.started.size(), 1u);  // no sync while the boot work runs
  f.Done(Work::kBoot);
  EXPECT_TRUE(f.daemon.ready());
  EXPECT_EQ(f.host.reconciles, 1);
  EXPECT_EQ(f.host.Count("READY=1"), 1);
  EXPECT_EQ(f.host.started.back(), Work::kSync);
}

TEST(Daemon, SupervisionHeartbeatsAndWatchdogGoOnDuringALongSync) {
  Fixture f;
  f.daemon.Start(f.now);
  ASSERT_TRUE(f.daemon.busy());
  int checks = f.host.checks;
  f.RunFor(30 * 60'000);  // a 30-minute download
  EXPECT_TRUE(f.daemon.busy());
  EXPECT_EQ(f.host.started.size(), 1u);  // one sync at a time
  EXPECT_GE(f.host.checks - checks, 30 * 60 - 1);              // every second
  EXPECT_GE(f.host.Count("WATCHDOG=1"), 30 * 60 / 5 - 1);     // every 5 s
  EXPECT_GE(f.host.beats.size(), size_t{30 * 60 / 10});        // every 10 s
  EXPECT_EQ(f.host.beats.back(), "|syncing: 5 of 10 bytes");
  f.Done(Work::kSync, "", true);
  EXPECT_EQ(f.host.reconciles, 2);  // the new generation's services
  EXPECT_EQ(f.host.beats.back(), "|");  // the server hears of it at once
  f.RunFor(59'000);
  EXPECT_EQ(f.host.started.size(), 1u);
  f.RunFor(2'000);
  EXPECT_EQ(f.host.started.size(), 2u);  // one interval after the end of the last
}

TEST(Daemon, AFailedSyncIsReportedUntilOneSucceeds) {
  Fixture f;
  f.daemon.Start(f.now);
  f.Done(Work::kSync, "no store answered");
  f.RunFor(10'000);
  EXPECT_EQ(f.host.beats.back(), "no store answered|");
  f.RunFor(55'000);
  f.Done(Work::kSync, "");
  EXPECT_EQ(f.host.beats.back(), "|");
}

TEST(Daemon, SnapshotsEveryIntervalSoonerAgainAfterAFailureNeverBesideASync) {
  Fixture f;
  f.host.snapshot_interval_ms = 40'000;
  f.daemon.Start(f.now);
  f.Done(Work::kSync);
  f.RunFor(39'000);
  EXPECT_EQ(std::count(f.host.started.begin(), f.host.started.end(), Work::kSnapshot), 0);
  f.RunFor(2'000);
  ASSERT_EQ(f.host.started.back(), Work::kSnapshot);
  f.RunFor(25'000);  // the next sync is due meanwhile
  EXPECT_EQ(f.host.started.back(), Work::kSnapshot);  // the sync waits for the snapshot
  f.Done(Work::kSnapshot, "store unreachable");
  EXPECT_EQ(f.host.started.back(), Work::kSync);  // the overdue sync first
  f.Done(Work::kSync);
  f.RunFor(29'000);
  EXPECT_EQ(f.host.started.back(), Work::kSync);
  f.RunFor(2'000);
  EXPECT_EQ(f.host.started.back(), Work::kSnapshot);  // retried after 30 s, not 40
}

TEST(Daemon, DriftFoundByABackgroundVerifyIsReportedUntilASyncRepairsIt) {
  FakeHost host;
  NoEvents events;
  int64_t now = 0;
  DaemonTimings timings = Timings();
  timings.verify_interval_ms = 600'000;
  Daemon daemon(timings, host, events, [&] { return now; });
  daemon.Start(now);
  daemon.Handle({DaemonEvent::kWorkDone, {Work::kSync, false, false, ""}}, now);
  auto run_for = [&](int64_t ms) {
    for (int64_t end = now + ms; now < end;) {
      now = std::min(end, now + std::max<int64_t>(daemon.WaitMs(now), 1));
      daemon.Handle({}, now);
      if (daemon.busy() && host.started.back() == Work::kSync)  // syncs end at once here
        daemon.Handle({DaemonEvent::kWorkDone, {Work::kSync, false, false, ""}}, now);
    }
  };
  run_for(599'000);
  EXPECT_EQ(std::count(host.started.begin(), host.started.end(), Work::kVerify), 0);
  // A sync may be due at the same moment: the verify waits for the next idle tick.
  run_for(62'000);
  ASSERT_EQ(std::count(host.started.begin(), host.started.end(), Work::kVerify), 1);
  ASSERT_EQ(host.started.back(), Work::kVerify);
  daemon.Handle({DaemonEvent::kWorkDone, {Work::kVerify, false, false, "drift: 1 difference in a@1"}}, now);
  now += 10'000;
  daemon.Handle({}, now);
  EXPECT_TRUE(host.beats.back().starts_with("drift: 1 difference in a@1|")) << host.beats.back();
  run_for(60'000);  // the next sync (it repairs what it finds changed)
  EXPECT_EQ(host.beats.back(), "|");
}

TEST(Daemon, ANewAgentBuildEndsTheDaemonWithoutStoppingServices) {
  Fixture f;
  f.daemon.Start(f.now);
  f.Done(Work::kSync, "", true, true);
  ASSERT_TRUE(f.last_code.has_value());
  EXPECT_EQ(*f.last_code, kDaemonExitNewAgent);
  EXPECT_EQ(f.host.shutdowns, 0);
}

TEST(Daemon, AStopShutsDownOnce) {
  Fixture f;
  f.daemon.Start(f.now);
  auto code = f.daemon.Handle({DaemonEvent::kStop, {}}, f.now);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(f.host.shutdowns, 1);
  EXPECT_EQ(f.host.notes.back(), "STOPPING=1");
}

}  // namespace
}  // namespace wharf
