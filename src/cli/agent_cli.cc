#include "cli/agent_cli.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "agent/agent.h"
#include "agent/daemon.h"
#include "agent/drift.h"
#include "agent/launcher.h"
#include "cli/agent_config.h"
#include "agent/dev.h"
#include "agent/layout.h"
#include "agent/supervisor.h"
#include "agent/init_scripts.h"
#include "agent/persist.h"
#include "cli/service_cli.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/strings.h"
#include "cli/output.h"
#include "fetch/api_client.h"

namespace wharf {
namespace {

using nlohmann::ordered_json;
constexpr const char* kProgram = "wharf-agent";

int Failed(const Error& error, int code = kExitFailure) { return ReportError(kProgram, error, code); }

// `need_trust`: the trusted keys are loaded even when no store is needed (rollback).
Result<AgentConfig> MakeConfig(AgentArgs& args, bool need_store, bool need_trust = false) {
  AgentConfig config;
  if (const char* server = std::getenv("WHARF_SERVER"); server && args.server.empty()) args.server = server;
  if (const char* token = std::getenv("WHARF_TOKEN"); token && args.token.empty() && args.token_file.empty())
    args.token = token;
  config.root = AbsolutePath(args.root);
  if (!args.supervisor.empty() && args.supervisor != "builtin" && args.supervisor != "none" &&
      args.supervisor != "systemd")
    return Fail(ErrorCode::kInvalidArgument, "supervisor = \"" + args.supervisor +
                                                 "\": expected builtin, systemd or none");
  std::string config_path = args.config.empty() ? Layout(config.root).config() : args.config;
  if (!args.config.empty() || PathExists(config_path))
    WHARF_TRY(ReadConfigFile(config_path, config.root, args));
  std::vector<std::string> stores;
  for (const auto& s : args.stores) AddUrls(stores, s);
  config.stores = stores;
  config.fec = args.fec;
  config.keep = args.keep > 0 ? args.keep : 3;
  config.dry_run = args.dry_run;
  if (args.transfer_base_seconds >= 0) config.deadline.base_seconds = args.transfer_base_seconds;
  if (args.transfer_floor_rate >= 0) config.deadline.floor_bytes_per_second = static_cast<uint64_t>(args.transfer_floor_rate);
  if (config.fec.empty()) {  // neither --fec nor agent.toml: the FEC is named as its host
    config.fec = ShortHostName();
    if (!ValidateFecName(config.fec))
      return Fail(ErrorCode::kInvalidArgument, "which FEC is this? the host name \"" + config.fec +
                                                   "\" is not a FEC name; pass --fec NAME or set fec in " + config_path);
  }
  if (!need_store && !need_trust) return config;
  if (need_store && config.stores.empty())
    return Fail(ErrorCode::kInvalidArgument, "no store: pass --store URL[,URL...] or set store in " + config_path);
  if (args.trust.empty())
    return Fail(ErrorCode::kInvalidArgument,
                "no trusted key: pass --trust NAME.pub or set trust in " + config_path);
  for (const auto& path : args.trust) {
    auto key = LoadPublicKey(path);
    if (!key) return std::unexpected(key.error());
    config.trusted.push_back(*key);
  }
  return config;
}

void PrintSync(const SyncReport& report, const AgentConfig& config, bool json) {
  static const char* kOutcomes[] = {"applied", "up-to-date", "offline", "planned"};
  const char* outcome = kOutcomes[static_cast<int>(report.outcome)];
  if (json) {
    ordered_json j{{"fec", config.fec}, {"outcome", outcome}, {"generation", report.generation},
                   {"store", report.store}, {"requests", report.requests},
                   {"bytes_fetched", report.bytes_fetched}, {"files_reused", report.files_reused},
                   {"files_patched", report.files_patched},
                   {"clock_behind", report.clock_behind}};
    if (report.previous) j["previous"] = *report.previous;
    j["packages"] = ordered_json::array();
    for (const auto& step : report.plan)
      j["packages"].push_back({{"name", step.ref.name}, {"version", step.ref.version},
                               {"fetched", !step.present}});
    if (!report.offline_reason.empty()) j["reason"] = report.offline_reason;
    if (!report.local_rollback.empty()) j["local_rollback"] = report.local_rollback;
    if (!report.expiry.empty()) j["expiry"] = report.expiry;
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::string prev = report.previous ? std::to_string(*report.previous) : "none";
  switch (report.outcome) {
    case SyncOutcome::kApplied:
      PrintHuman(stdout, "%s: generation %s -> %llu applied (%s fetched in %llu requests)\n",
                  config.fec.c_str(), prev.c_str(), static_cast<unsigned long long>(report.generation),
                  HumanBytes(report.bytes_fetched).c_str(),
                  static_cast<unsigned long long>(report.requests));
      break;
    case SyncOutcome::kUpToDate:
      PrintHuman(stdout, "%s: generation %llu is current; nothing to do\n", config.fec.c_str(),
                  static_cast<unsigned long long>(report.generation));
      break;
    case SyncOutcome::kOffline:
      PrintHuman(stdout, "%s: no store answered: %s\n", config.fec.c_str(), report.offline_reason.c_str());
      break;
    case SyncOutcome::kPlanned:
      for (const auto& step : report.plan)
        PrintHuman(stdout, "dry run: %s@%s %s\n", step.ref.name.c_str(), step.ref.version.c_str(),
                    step.present ? "present" : ("to fetch, " + HumanBytes(step.ref.archive_size)).c_str());
      break;
  }
  if (!report.local_rollback.empty() && report.outcome != SyncOutcome::kPlanned)
    PrintHuman(stdout, "%s: %s holds: the store offers no newer generation\n", config.fec.c_str(),
               report.local_rollback.c_str());
  if (!report.expiry.empty() && report.outcome != SyncOutcome::kOffline && report.outcome != SyncOutcome::kPlanned)
    PrintHuman(stdout, "%s: %s; its services run (expiry never stops them)\n", config.fec.c_str(),
               report.expiry.c_str());
  if (report.clock_behind)
    Note(config.fec + ": warning: this clock is behind the newest accepted generation; set the time (NTP)");
}

// The agent's API token: --token, or the first line of token_file.
Result<std::string> AgentToken(const AgentArgs& args) {
  if (!args.token.empty() || args.token_file.empty()) return args.token;
  auto text = ReadFile(args.token_file, 4096);
  if (!text) return std::unexpected(text.error());
  auto lines = Split(*text, '\n');
  return lines.empty() ? std::string() : lines[0];
}

// Heartbeats to the server: short timeouts, and a growing pause after failures, so that a
// server that is away never holds the agent up.
class Reporter {
 public:
  Reporter(const AgentArgs& args, std::string fec) : fec_(std::move(fec)) {
    if (args.server.empty()) return;
    auto token = AgentToken(args);
    if (!token) {
      Note("wharf-agent: warning: no heartbeats: " + token.error().message);
      return;
    }
    if (token->empty()) {
      Note("wharf-agent: warning: no heartbeats: server is set but no token (--token, token_file)");
      return;
    }
    ApiOptions options;
    options.connect_timeout_seconds = 3;
    options.timeout_seconds = 5;
    client_ = std::make_unique<ApiClient>(args.server, *token, options);
  }

  bool enabled() const { return client_ != nullptr; }

  /// Sends one heartbeat unless a recent failure asks to wait (`force` ignores that).
  /// True when it was delivered.
  bool Report(std::optional<uint64_t> generation, const std::string& error, int64_t now, bool force,
              const ordered_json& services = ordered_json::array(), const ordered_json& dev = ordered_json::array(),
              const std::string& activity = "") {
    if (!client_ || (!force && now < next_try_)) return false;
    ordered_json body{{"generation", generation ? ordered_json(*generation) : ordered_json(nullptr)},
                      {"services", services}, {"error", error},
                      {"agent_version", "0.1.0"}, {"dev", dev}};
    if (!activity.empty()) body["activity"] = activity;
    auto sent = client_->Call("POST", "/api/v1/fecs/" + fec_ + "/heartbeat", body.dump());
    if (sent) {
      if (failures_ > 0) Note("wharf-agent: heartbeats reach " + client_->server() + " again");
      failures_ = 0;
      next_try_ = 0;
      return true;
    }
    ++failures_;
    int64_t pause = std::min<int64_t>(600, int64_t{5} << std::min(failures_ - 1, 7));
    next_try_ = now + pause;
    if (failures_ == 1 || sent.error().code == ErrorCode::kRejected)
      Note("wharf-agent: warning: heartbeat not delivered (" + sent.error().message +
           "); the agent goes on, next try in " + std::to_string(pause) + " s");
    return false;
  }

 private:
  std::string fec_;
  std::unique_ptr<ApiClient> client_;
  int failures_ = 0;
  int64_t next_try_ = 0;
};

// The services' states for a heartbeat, from their process servers' status files.
ordered_json ServiceStates(const std::string& root) {
  ordered_json out = ordered_json::array();
  for (const auto& s : ReadServiceStatuses(root))
    out.push_back({{"name", s.value("name", "")}, {"state", s.value("state", "") == "running" ? "up" : "down"},
                   {"restarts", s.value("restarts", 0)}, {"last_exit", s.value("last_exit", ordered_json())}});
  return out;
}

// The dev versions in place of the generation's, for a heartbeat: the server shows them.
ordered_json DevStates(const std::string& root) {
  auto dev = ordered_json::parse(DevStatusJson(Layout(root)), nullptr, false);
  return dev.is_array() ? dev : ordered_json::array();
}

// systemd's notify protocol without libsystemd: one datagram to $NOTIFY_SOCKET.
void NotifySystemd(const std::string& state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t length = std::strlen(path);
  if (length >= sizeof addr.sun_path) return;
  std::memcpy(addr.sun_path, path, length);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // an abstract socket
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return;
  ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
           static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length));
}


// The generation `current` points at; nothing before the first sync. (What the helpers
// below need, without the listing of profiles and leftovers that ReadStatus does.)
std::optional<Generation> Active(const AgentConfig& config) {
  auto active = ReadActive(Layout(config.root));
  if (!active || !*active) return std::nullopt;
  return (*active)->generation;
}

// "local rollback to R (from F)" while a local rollback holds, else "": said in heartbeats.
std::string LocalRollback(const AgentConfig& config) {
  Layout layout(config.root);
  auto active = ReadActive(layout);
  if (!active || !*active) return "";
  auto floor = ReadFloor(layout, *active);
  return floor ? LocalRollbackNote((*active)->generation.number, *floor) : "";
}

std::optional<uint64_t> ActiveNumber(const AgentConfig& config) {
  auto active = Active(config);
  if (!active) return std::nullopt;
  return active->number;
}

// The record of the last snapshot this agent stored, for `status`.
std::string LastSnapshotPath(const AgentConfig& config) { return JoinPath(Layout(config.root).base(), "snapshot.json"); }

// Runs the active generation's boot scripts; returns a one-line summary of failures ("" if none).
std::string RunInit(const AgentConfig& config, Fetcher& fetcher, const std::string& store) {
  auto active = Active(config);
  if (!active || active->init.empty()) return "";
  Mirrors mirrors(config.stores, fetcher);
  if (!store.empty()) mirrors.Prefer(store);
  auto results = RunInitScripts(Layout(config.root), *active, mirrors,
                                store.empty() ? config.stores.front() : store);
  if (!results) {
    ReportError(kProgram, results.error());
    return results.error().message;
  }
  std::string summary;
  for (const auto& r : *results) {
    if (r.ok()) continue;
    std::string what = r.skipped     ? "skipped (an earlier script failed and the generation says stop)"
                       : r.timed_out ? "timed out and was killed"
                       : r.signal    ? std::string("killed by SIG") + sigabbrev_np(r.signal)
                                     : "failed with exit " + std::to_string(r.exit_code);
    std::string line = config.fec + ": init script " + r.name + " " + what;
    if (!r.last_lines.empty()) line += "; last output: " + r.last_lines.back();
    Note("wharf-agent: warning: " + line);
    if (summary.empty()) summary = line;
  }
  return summary;
}

std::unique_ptr<DataChannel> DataChannelFor(const AgentArgs& args, const AgentConfig& config, std::string& why) {
  auto token = AgentToken(args);
  if (!token) {
    why = token.error().message;
    return nullptr;
  }
  return OpenDataChannel(config.fec, args.server, *token, config.stores,
                         args.keep_snapshots > 0 ? args.keep_snapshots : kDefaultSnapshotKeep, why);
}

// Before any service starts: declared folders that are missing or empty get the latest
// snapshot back. Returns a one-line problem for the heartbeat ("" if none).
std::string RestoreData(const AgentArgs& args, const AgentConfig& config) {
  auto active = Active(config);
  Layout layout(config.root);
  if (!active || EmptyPersistentPaths(layout, *active).empty()) return "";
  std::string why;
  auto channel = DataChannelFor(args, config, why);
  std::string problem;
  if (!channel) {
    problem = config.fec + ": persistent data not restored: " + why;
  } else if (auto report = RestorePersistentData(layout, *active, *channel); !report) {
    problem = report.error().message;
  } else if (report->none_stored) {
    Note(config.fec + ": persistent folders are empty and the store has no snapshot yet; starting without data");
  } else {
    for (const auto& path : report->restored)
      Note(config.fec + ": restored " + path + " from snapshot " + report->snapshot);
  }
  if (!problem.empty()) Note("wharf-agent: warning: " + problem + "; services start without it");
  return problem;
}

// A snapshot now, sent to the store; nothing when the generation declares no persistent
// data and `required` is false.
Result<std::optional<SnapshotRecord>> Snapshot(const AgentArgs& args, const AgentConfig& config, const Clock& clock,
                                               bool required) {
  auto active = Active(config);
  if (!active) return Fail(ErrorCode::kNotFound, config.root + ": no generation applied yet; sync first");
  if (active->persist.paths.empty() && !required) return std::optional<SnapshotRecord>();
  std::string why;
  auto channel = DataChannelFor(args, config, why);
  if (!channel) return Fail(ErrorCode::kInvalidArgument, config.fec + ": no snapshot: " + why);
  auto record = TakeSnapshot(Layout(config.root), *active, *channel, clock.Now());
  if (!record) return std::unexpected(record.error());
  Note(config.fec + ": snapshot " + record->id + " stored at " + channel->Describe() + " (" +
       std::to_string(record->entries) + " entries, " + HumanBytes(record->size) + ")");
  (void)WriteFileAtomic(LastSnapshotPath(config), SnapshotRecordToJson(*record));
  return std::optional<SnapshotRecord>(std::move(*record));
}

}  // namespace

int RunAgentSnapshot(const AgentArgs& given) {
  AgentArgs args = given;
  auto config = MakeConfig(args, false);
  if (!config) return Failed(config.error(), kExitUsage);
  SystemClock clock;
  auto record = Snapshot(args, *config, clock, true);
  if (!record) return Failed(record.error());
  if (args.json) std::printf("%s", SnapshotRecordToJson(**record).c_str());
  return kExitOk;
}

Result<AgentConfig> MakeAgentConfig(AgentArgs& args, bool need_store) { return MakeConfig(args, need_store); }

int RunAgentSync(const AgentArgs& given) {
  AgentArgs args = given;
  auto config = MakeConfig(args, true);
  if (!config) return Failed(config.error(), kExitUsage);
  SystemClock clock;
  Fetcher fetcher;
  Agent agent(*config, clock, fetcher);
  Reporter reporter(args, config->fec);
  auto report = agent.Sync();
  std::string init_error;
  if (report && !config->dry_run && report->outcome != SyncOutcome::kOffline)
    init_error = RestoreData(args, *config);
  if (report && report->outcome == SyncOutcome::kApplied) {
    std::string scripts = RunInit(*config, fetcher, report->store);
    if (!scripts.empty()) init_error = scripts;
  }
  if (reporter.enabled() && !config->dry_run)
    reporter.Report(ActiveNumber(*config),
                    report ? (!init_error.empty()             ? init_error
                              : !report->offline_reason.empty() ? report->offline_reason
                              : !report->local_rollback.empty() ? report->local_rollback
                                                                : report->expiry)
                           : report.error().message,
                    clock.Now(), true, ServiceStates(config->root), DevStates(config->root));
  if (!report) return Failed(report.error());
  PrintSync(*report, *config, args.json);
  return report->outcome == SyncOutcome::kOffline ? kAgentExitOffline : kExitOk;
}

namespace {

// The machine's boot, for "once per boot": the kernel's random boot id.
std::string BootId() {
  auto id = ReadFile("/proc/sys/kernel/random/boot_id", 256);
  if (!id) return "";
  while (!id->empty() && (id->back() == '\n' || id->back() == ' ')) id->pop_back();
  return *id;
}

// Heartbeats from their own thread: the loop posts the newest state and never waits for the
// server. The first one delivered makes the daemon count as healthy.
class HeartbeatThread {
 public:
  HeartbeatThread(const AgentArgs& args, const std::string& fec) : reporter_(args, fec) {
    if (reporter_.enabled()) thread_ = std::thread([this] { Loop(); });
  }
  ~HeartbeatThread() {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool enabled() const { return reporter_.enabled(); }
  bool delivered() const { return delivered_; }

  void Post(std::optional<uint64_t> generation, std::string error, ordered_json services, ordered_json dev,
            std::string activity) {
    std::lock_guard lock(mutex_);
    pending_ = Beat{generation, std::move(error), std::move(services), std::move(dev), std::move(activity)};
    wake_.notify_all();
  }

 private:
  struct Beat {
    std::optional<uint64_t> generation;
    std::string error;
    ordered_json services, dev;
    std::string activity;
  };
  void Loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return quit_ || pending_; });
      if (quit_) return;
      Beat beat = std::move(*pending_);
      pending_.reset();
      lock.unlock();
      if (reporter_.Report(beat.generation, beat.error, std::time(nullptr), false, beat.services, beat.dev,
                           beat.activity))
        delivered_ = true;
      lock.lock();
    }
  }
  Reporter reporter_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::optional<Beat> pending_;
  bool quit_ = false;
  std::atomic<bool> delivered_{false};
  std::thread thread_;
};

// What the daemon does on a FEC (agent/daemon.h): the work on the worker thread, the
// services through the supervisor, heartbeats through their thread.
class FecHost : public DaemonHost {
 public:
  static constexpr uint64_t kVerifyBytesPerSecond = 8u << 20;  // 8 MiB/s: a background check

  FecHost(const AgentArgs& args, AgentConfig config, Worker& worker)
      : args_(args), config_(std::move(config)), layout_(config_.root), worker_(worker),
        agent_(config_, clock_, fetcher_), beats_(args, config_.fec) {
    if (args.supervisor != "none") {
      supervisor_ = std::make_unique<Supervisor>(config_.root, JoinPath(Dirname(SelfBinary()), "wharf-procserv"));
      if (args.supervisor == "systemd") supervisor_->UseSystemd(::getuid() != 0);
      if (!args.console_group.empty()) supervisor_->SetSocketGroup(args.console_group);
      if (std::getenv("WATCHDOG_USEC")) supervisor_->SetWaitHook([] { NotifySystemd("WATCHDOG=1"); });
      for (const auto& action : supervisor_->Adopt()) Note(config_.fec + ": " + action);
    }
  }

  bool BootWorkNeeded() override {
    auto active = Active(config_);
    if (!active) return false;
    if (!EmptyPersistentPaths(layout_, *active).empty()) return true;
    return !active->init.empty() && !BootedOn(active->number);
  }

  void StartWork(Work work) override {
    worker_.Post([this, work] {
      WorkOutcome outcome;
      outcome.work = work;
      switch (work) {
        case Work::kBoot: outcome.error = Boot(""); break;
        case Work::kSync: SyncRound(outcome); break;
        case Work::kVerify: outcome.error = Verify(); break;
        case Work::kSnapshot:
          if (auto taken = Snapshot(args_, config_, clock_, false); !taken) {
            Note("wharf-agent: warning: " + taken.error().message);
            outcome.error = taken.error().message;
          }
          break;
      }
      std::fflush(stdout);
      return outcome;
    });
  }

  void Supervise(bool reconcile) override {
    if (reconcile) {
      auto active = Active(config_);
      snapshot_interval_ms_ = active && !active->persist.paths.empty() ? active->persist.interval * 1000 : 0;
      generation_ = active ? std::optional<uint64_t>(active->number) : std::nullopt;
      local_rollback_ = LocalRollback(config_);
      // A delivered agent build that was refused says so in every heartbeat.
      launcher_report_ = LauncherReport(layout_);
      if (!supervisor_) return;
      std::vector<std::string> errors;
      std::vector<DesiredService> desired;
      if (active) desired = DesiredServices(layout_, *active, errors);
      for (const auto& action : supervisor_->Reconcile(desired)) Note(config_.fec + ": " + action);
      service_error_ = errors.empty() ? "" : errors.front();
      for (const auto& e : errors) Note(config_.fec + ": warning: service not started: " + e);
      return;
    }
    if (supervisor_)
      for (const auto& action : supervisor_->Check()) Note(config_.fec + ": " + action);
    if (healthy_wanted_ && !healthy_sent_ && beats_.delivered()) SendHealthy();
  }

  int64_t SnapshotIntervalMs() override { return snapshot_interval_ms_; }

  void Heartbeat(const std::string& error, const std::string& activity) override {
    if (!beats_.enabled()) return;
    std::string said = !error.empty()              ? error
                       : !launcher_report_.empty() ? launcher_report_
                       : !local_rollback_.empty()  ? local_rollback_
                       : !service_error_.empty()   ? service_error_
                                                   : Expiry();
    beats_.Post(generation_, said, ServiceStates(config_.root), DevStates(config_.root), activity);
  }

  std::string Activity() override { return SyncActivity(agent_.progress()); }

  void Notify(const std::string& state) override { NotifySystemd(state); }

  void Healthy() override {
    healthy_wanted_ = true;
    if (!beats_.enabled()) SendHealthy();
  }

  void Shutdown() override {
    if (!supervisor_ || !args_.stop_services) {
      if (supervisor_ && supervisor_->size() > 0)
        Note(config_.fec + ": the services keep running (stop_services = true stops them with the agent)");
      return;
    }
    supervisor_->StopAll();
    // The services are stopped: the data is at rest, the best moment for a snapshot.
    if (!worker_.busy())
      if (auto taken = Snapshot(args_, config_, clock_, false); !taken)
        Note("wharf-agent: warning: " + taken.error().message);
  }

 private:
  // Once this machine booted and ran generation `number`'s boot scripts, they do not run
  // again for it: an agent started again finds its services running.
  std::string BootRecord() const { return JoinPath(layout_.base(), "booted"); }
  bool BootedOn(uint64_t number) const {
    auto text = ReadFile(BootRecord(), 256);
    return text && *text == BootId() + " " + std::to_string(number) + "\n";
  }

  // Before the services of a generation start: empty persistent folders filled from the
  // latest snapshot, then the boot scripts. Returns a one-line problem ("" if none).
  std::string Boot(const std::string& store) {
    auto active = Active(config_);
    if (!active) return "";
    std::string problem = RestoreData(args_, config_);
    data_checked_ = problem.empty();
    if (!active->init.empty() && !BootedOn(active->number)) {
      std::string scripts = RunInit(config_, fetcher_, store);
      if (!scripts.empty()) problem = scripts;
    }
    (void)WriteFileAtomic(BootRecord(), BootId() + " " + std::to_string(active->number) + "\n");
    return problem;
  }

  // The active generation's files re-hashed at a bounded rate (the FEC's I/O is the
  // services' first); one line when they differ from what was signed ("" when not).
  std::string Verify() {
    auto active = Active(config_);
    if (!active) return "";
    VerifyBudget budget;
    budget.bytes_per_second = kVerifyBytesPerSecond;
    auto report = VerifyInstalled(layout_, *active, budget);
    if (!report) {
      Note("wharf-agent: warning: verify: " + report.error().message);
      return "";
    }
    std::string summary = DriftSummary(report->drifts);
    if (!summary.empty()) Note(config_.fec + ": " + summary);
    return summary;
  }

  // The active generation past its expiry: what runs and why ("" while it is valid).
  std::string Expiry() {
    auto active = Active(config_);
    return active ? ExpiryNote(*active, clock_.Now()) : "";
  }

  // Said in the log once each time `key` changes (a sync runs every minute; the reason a
  // store gave, e.g. curl's "after 3 ms", may differ each time).
  void Log(std::string& last, const std::string& key, const std::string& line) {
    if (key == last) return;
    last = key;
    if (!line.empty()) Note(config_.fec + ": " + line);
  }

  void SyncRound(WorkOutcome& outcome) {
    auto report = agent_.Sync();
    if (!report) {
      outcome.error = report.error().message;
      ReportError(kProgram, report.error());
      return;
    }
    outcome.error = report->offline_reason;
    // Offline or expired, the services keep running: the log says why.
    bool offline = report->outcome == SyncOutcome::kOffline;
    Log(logged_offline_, offline ? std::to_string(report->generation) + report->expiry : "",
        offline ? report->offline_reason + "; its services keep running" : "");
    std::string expired = !offline && !report->expiry.empty() ? report->expiry + "; its services keep running" : "";
    Log(logged_expiry_, expired, expired);
    if (report->outcome == SyncOutcome::kApplied) {
      PrintSync(*report, config_, args_.json);
      outcome.applied = true;
      if (args_.delegate)
        if (auto active = Active(config_)) {
          auto change = ShouldSwitchAgent(layout_, *active);
          if (!change) ReportError(kProgram, change.error());
          outcome.new_agent = change && *change;
          if (outcome.new_agent) {
            Note(config_.fec + ": generation " + std::to_string(active->number) +
                 " delivers another wharf-agent build; handing over (the services keep running)");
            return;
          }
        }
      std::string boot = Boot(report->store);
      if (!boot.empty()) outcome.error = boot;
    } else if (!data_checked_ && report->outcome != SyncOutcome::kOffline) {
      // Persistent data that could not be restored at boot: tried again while the store is
      // there (only empty folders are filled).
      std::string restore = RestoreData(args_, config_);
      data_checked_ = restore.empty();
      if (!restore.empty()) outcome.error = restore;
    }
  }

  void SendHealthy() {
    healthy_sent_ = true;
    SignalHealthy();
  }

  const AgentArgs& args_;
  AgentConfig config_;
  Layout layout_;
  Worker& worker_;
  SystemClock clock_;
  Fetcher fetcher_;
  Agent agent_;
  HeartbeatThread beats_;
  std::unique_ptr<Supervisor> supervisor_;
  int64_t snapshot_interval_ms_ = 0;
  std::optional<uint64_t> generation_;
  std::string service_error_;
  std::string launcher_report_;
  std::string local_rollback_;  // "local rollback to R (from F)" while one holds
  bool data_checked_ = false;  // touched by the worker only
  std::string logged_offline_, logged_expiry_;  // the worker's last lines about them
  bool healthy_wanted_ = false, healthy_sent_ = false;
};

}  // namespace

int RunAgentLauncher(const AgentArgs& given, int argc, char** argv) {
  AgentArgs args = given;
  auto config = MakeConfig(args, true);
  if (!config) return Failed(config.error(), kExitUsage);
  LauncherOptions options;
  options.root = config->root;
  if (args.health_deadline_seconds > 0) options.timing.health_deadline_ms = int64_t{args.health_deadline_seconds} * 1000;
  return RunLauncher(options, argc, argv);
}

int RunAgentDaemon(const AgentArgs& given) {
  AgentArgs args = given;
  if (args.delegate) HoldHealthFd();
  auto config = MakeConfig(args, true);
  if (!config) return Failed(config.error(), kExitUsage);
  if (args.supervisor.empty()) args.supervisor = "builtin";
  SignalEvents events;  // first: every thread inherits the blocked signals
  Worker worker;
  events.Watch(worker);
  FecHost host(args, *config, worker);
  DaemonTimings timings;
  timings.sync_interval_ms = int64_t{args.interval_seconds} * 1000;
  timings.heartbeat_interval_ms = int64_t{args.heartbeat_seconds} * 1000;
  timings.verify_interval_ms = int64_t{args.verify_interval_seconds} * 1000;
  // Under systemd (Type=notify, WatchdogSec=): a keep-alive at least twice per period.
  if (const char* usec = std::getenv("WATCHDOG_USEC"))
    timings.watchdog_ms = std::max<int64_t>(100, std::atoll(usec) / 2000);
  Daemon daemon(timings, host, events, MonotonicMs);
  int code = daemon.Run();
  std::fflush(nullptr);
  // A sync a stop cut short is left as a crash would leave it: the next start cleans up.
  if (worker.busy()) std::_Exit(code);
  return code;
}

int RunAgentRollback(const AgentArgs& given) {
  AgentArgs args = given;
  auto config = MakeConfig(args, false, true);
  if (!config) return Failed(config.error(), kExitUsage);
  SystemClock clock;
  Fetcher fetcher;
  Agent agent(*config, clock, fetcher);
  auto report = agent.Rollback(args.rollback_to ? std::optional<uint64_t>(args.rollback_to) : std::nullopt);
  if (!report) return Failed(report.error());
  if (report->changed && !config->dry_run) {
    // The server hears of it at once when it can; `run` says it in every heartbeat meanwhile.
    Reporter reporter(args, config->fec);
    if (reporter.enabled())
      reporter.Report(ActiveNumber(*config), LocalRollback(*config), clock.Now(), true, ServiceStates(config->root),
                      DevStates(config->root));
  }
  if (args.json) {
    ordered_json j{{"fec", config->fec}, {"from", report->from}, {"to", report->to},
                   {"changed", report->changed}, {"dry_run", config->dry_run}, {"kept", report->kept}};
    j["packages"] = ordered_json::array();
    for (const auto& p : report->packages) j["packages"].push_back({{"name", p.name}, {"version", p.version}});
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  unsigned long long from = report->from, to = report->to;
  if (!report->changed)
    PrintHuman(stdout, "%s: generation %llu is already active; nothing to do\n", config->fec.c_str(), to);
  else if (config->dry_run)
    PrintHuman(stdout, "dry run: %s: would roll back from generation %llu to kept generation %llu\n",
               config->fec.c_str(), from, to);
  else
    PrintHuman(stdout, "%s: generation %llu -> %llu (local rollback; a running agent restarts the changed "
                       "services at its next sync, a newer signed generation supersedes it)\n",
               config->fec.c_str(), from, to);
  return kExitOk;
}

int RunAgentStatus(const AgentArgs& args) {
  AgentArgs relaxed = args;
  if (relaxed.fec.empty()) relaxed.fec = "-";
  auto config = MakeConfig(relaxed, false);
  if (!config) return Failed(config.error(), kExitUsage);
  SystemClock clock;
  Fetcher fetcher;
  Agent agent(*config, clock, fetcher);
  auto status = agent.ReadStatus();
  if (!status) return Failed(status.error());
  if (args.json) {
    ordered_json j{{"root", config->root}};
    if (status->active) {
      const Generation& g = *status->active;
      j["fec"] = g.fec;
      j["generation"] = g.number;
      j["created"] = FormatTime(g.created);
      j["expires"] = FormatTime(g.expires);
      j["packages"] = ordered_json::array();
      for (const auto& p : g.packages)
        j["packages"].push_back({{"name", p.name}, {"version", p.version}, {"prefix", p.prefix},
                                 {"sha256", p.archive_sha256}});
    } else {
      j["generation"] = nullptr;
    }
    if (status->active && !status->active->persist.paths.empty()) {
      auto last = ReadFile(LastSnapshotPath(*config), 64 << 10);
      j["persist"] = {{"paths", status->active->persist.paths}, {"interval", status->active->persist.interval},
                      {"last_snapshot", last ? ordered_json::parse(*last, nullptr, false) : ordered_json(nullptr)}};
    }
    j["floor"] = {{"number", status->floor.number}, {"created", FormatTime(status->floor.created)}};
    if (status->active) {
      j["offline"] = status->active->offline;
      std::string expiry = ExpiryNote(*status->active, clock.Now());
      j["expiry"] = expiry.empty() ? ordered_json(nullptr) : ordered_json(expiry);
    }
    std::string rolled = status->active ? LocalRollbackNote(status->active->number, status->floor) : "";
    j["local_rollback"] = rolled.empty() ? ordered_json(nullptr) : ordered_json(rolled);
    j["kept"] = status->kept;
    j["half_done"] = status->half_done;
    j["dev"] = ordered_json::parse(DevStatusJson(Layout(config->root)));
    std::string init = ReadInitResults(Layout(config->root));
    j["init"] = init.empty() ? ordered_json(nullptr) : ordered_json::parse(init, nullptr, false);
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  if (!status->active) {
    PrintHuman(stdout, "%s: no generation applied yet (run `wharf-agent sync`)\n", config->root.c_str());
  } else {
    const Generation& g = *status->active;
    PrintHuman(stdout, "FEC %s: generation %llu (created %s, expires %s)\n", g.fec.c_str(),
                static_cast<unsigned long long>(g.number), FormatTime(g.created).c_str(),
                FormatTime(g.expires).c_str());
    if (std::string rolled = LocalRollbackNote(g.number, status->floor); !rolled.empty())
      PrintHuman(stdout, "%s: a newer signed generation from the store supersedes it\n", rolled.c_str());
    if (std::string expiry = ExpiryNote(g, clock.Now()); !expiry.empty())
      PrintHuman(stdout, "%s: its services keep running; %s\n", expiry.c_str(),
                 g.offline ? "an offline generation is accepted past its expiry from a file:// store"
                           : "the store re-signs it (`wharf serve` before expiry, or `wharf refresh`)");
    for (const auto& p : g.packages)
      PrintHuman(stdout, "  %-24s %-16s %s\n", p.name.c_str(), p.version.c_str(), p.prefix.c_str());
    for (const auto& line : DevStatusLines(Layout(config->root))) PrintHuman(stdout, "%s\n", line.c_str());
    if (!g.persist.paths.empty()) {
      std::string paths;
      for (const auto& path : g.persist.paths) paths += " " + path;
      PrintHuman(stdout, "persistent data:%s, a snapshot every %llds\n", paths.c_str(), static_cast<long long>(g.persist.interval));
      auto last = ReadFile(LastSnapshotPath(*config), 64 << 10);
      auto record = ParseSnapshotRecord(last.value_or(""));
      if (record)
        PrintHuman(stdout, "  last snapshot %s, taken %s (%s)\n", record->id.c_str(), FormatTime(record->created).c_str(),
                    HumanBytes(record->size).c_str());
      else
        PrintHuman(stdout, "  no snapshot taken by this agent yet\n");
    }
  }
  std::string kept;
  for (auto n : status->kept) kept += " " + std::to_string(n);
  PrintHuman(stdout, "kept generations:%s\n", kept.empty() ? " none" : kept.c_str());
  for (const auto& path : status->half_done)
    PrintHuman(stdout, "half-done: %s (removed at the next sync)\n", path.c_str());
  std::string init = ReadInitResults(Layout(config->root));
  if (!init.empty()) {
    auto j = ordered_json::parse(init, nullptr, false);
    if (j.is_object()) {
      PrintHuman(stdout, "init scripts (generation %llu):\n", static_cast<unsigned long long>(j.value("generation", 0ull)));
      for (const auto& r : j["scripts"]) {
        std::string state = r.value("skipped", false) ? "SKIPPED" : r.value("timed_out", false) ? "TIMED OUT"
                            : !r["signal"].is_null() ? "KILLED " + r["signal"].get<std::string>()
                            : r.value("exit_code", -1) == 0 ? "ok" : "FAILED exit " + std::to_string(r.value("exit_code", -1));
        PrintHuman(stdout, "  %-24s %-16s %6.2f s\n", r.value("name", "").c_str(), state.c_str(), r.value("seconds", 0.0));
        if (!r.value("ok", false))
          for (const auto& line : r.value("last_lines", ordered_json::array()))
            PrintHuman(stdout, "    | %s\n", line.get<std::string>().c_str());
      }
    }
  }
  return kExitOk;
}

}  // namespace wharf
