#include "cli/agent_cli.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "agent/agent.h"
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

Result<AgentConfig> MakeConfig(AgentArgs& args, bool need_store) {
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
  if (config.fec.empty())
    return Fail(ErrorCode::kInvalidArgument, "which FEC is this? pass --fec NAME or set fec in " + config_path);
  if (!need_store) return config;
  if (config.stores.empty())
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
      PrintHuman(stdout, "%s: no store answered; staying on generation %s (%s)\n", config.fec.c_str(),
                  prev.c_str(), report.offline_reason.c_str());
      break;
    case SyncOutcome::kPlanned:
      for (const auto& step : report.plan)
        PrintHuman(stdout, "dry run: %s@%s %s\n", step.ref.name.c_str(), step.ref.version.c_str(),
                    step.present ? "present" : ("to fetch, " + HumanBytes(step.ref.archive_size)).c_str());
      break;
  }
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
  void Report(std::optional<uint64_t> generation, const std::string& error, int64_t now, bool force,
              const ordered_json& services = ordered_json::array(), const ordered_json& dev = ordered_json::array()) {
    if (!client_ || (!force && now < next_try_)) return;
    ordered_json body{{"generation", generation ? ordered_json(*generation) : ordered_json(nullptr)},
                      {"services", services}, {"error", error},
                      {"agent_version", "0.1.0"}, {"dev", dev}};
    auto sent = client_->Call("POST", "/api/v1/fecs/" + fec_ + "/heartbeat", body.dump());
    if (sent) {
      if (failures_ > 0) Note("wharf-agent: heartbeats reach " + client_->server() + " again");
      failures_ = 0;
      next_try_ = 0;
      return;
    }
    ++failures_;
    int64_t pause = std::min<int64_t>(600, int64_t{5} << std::min(failures_ - 1, 7));
    next_try_ = now + pause;
    if (failures_ == 1 || sent.error().code == ErrorCode::kRejected)
      Note("wharf-agent: warning: heartbeat not delivered (" + sent.error().message +
           "); the agent goes on, next try in " + std::to_string(pause) + " s");
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
                    report ? (init_error.empty() ? report->offline_reason : init_error) : report.error().message,
                    clock.Now(), true, ServiceStates(config->root), DevStates(config->root));
  if (!report) return Failed(report.error());
  PrintSync(*report, *config, args.json);
  return report->outcome == SyncOutcome::kOffline ? kAgentExitOffline : kExitOk;
}

int RunAgentDaemon(const AgentArgs& given) {
  AgentArgs args = given;
  auto config = MakeConfig(args, true);
  if (!config) return Failed(config.error(), kExitUsage);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  SystemClock clock;
  Fetcher fetcher;
  Agent agent(*config, clock, fetcher);
  Reporter reporter(args, config->fec);
  std::unique_ptr<Supervisor> supervisor;
  if (args.supervisor.empty()) args.supervisor = "builtin";
  if (args.supervisor != "none") supervisor = std::make_unique<Supervisor>(config->root, SelfBinary());
  if (args.supervisor == "systemd") supervisor->UseSystemd(::getuid() != 0);
  if (supervisor && !args.console_group.empty()) supervisor->SetSocketGroup(args.console_group);
  // The services of the active generation: those whose definition or package changed are
  // restarted, the others left alone. Offline, the active generation still runs.
  std::string service_error;
  auto reconcile = [&] {
    if (!supervisor) return;
    std::vector<std::string> errors;
    std::vector<DesiredService> desired;
    if (auto active = Active(*config)) desired = DesiredServices(Layout(config->root), *active, errors);
    for (const auto& action : supervisor->Reconcile(desired)) Note(config->fec + ": " + action);
    service_error = errors.empty() ? "" : errors.front();
    for (const auto& e : errors) Note(config->fec + ": warning: service not started: " + e);
  };
  int64_t next_sync = 0, next_beat = 0, next_snapshot = 0;
  // Persistent data: a snapshot one interval after start (the data just restored or left
  // by the last shutdown is already stored), then every interval.
  auto snapshot_interval = [&]() -> int64_t {
    auto active = Active(*config);
    return active && !active->persist.paths.empty() ? active->persist.interval : 0;
  };
  std::string last_error;
  bool booted = false;  // the boot scripts run once at start, and after each new generation
  bool data_checked = false;  // persistent folders looked at (and restored) since start
  // Under systemd (Type=notify, WatchdogSec=): ready after the first round, then a
  // keep-alive at least twice per watchdog period.
  int64_t watchdog_seconds = 0;
  if (const char* usec = std::getenv("WATCHDOG_USEC")) watchdog_seconds = std::max<int64_t>(1, std::atoll(usec) / 2000000);
  bool ready = false;
  for (;;) {
    if (ready && watchdog_seconds > 0) NotifySystemd("WATCHDOG=1");
    int64_t now = clock.Now();
    bool synced = false;
    if (now >= next_sync) {
      auto report = agent.Sync();
      if (!report) {
        last_error = report.error().message;
        ReportError(kProgram, report.error());
      } else {
        last_error = report->offline_reason;
        if (report->outcome == SyncOutcome::kApplied) PrintSync(*report, *config, args.json);
      }
      std::fflush(stdout);
      // Empty persistent folders are filled from the latest snapshot at boot (until the store
      // could be asked) and when a new generation comes: a folder the service itself emptied
      // later is its business.
      if (!data_checked || (report && report->outcome == SyncOutcome::kApplied)) {
        std::string restore = RestoreData(args, *config);
        if (restore.empty()) data_checked = true;
        else last_error = restore;
      }
      if (!booted || (report && report->outcome == SyncOutcome::kApplied)) {
        std::string init_error = RunInit(*config, fetcher, report ? report->store : "");
        if (!init_error.empty()) last_error = init_error;
        booted = true;
      }
      reconcile();
      next_sync = clock.Now() + args.interval_seconds;
      synced = true;
    }
    if (int64_t interval = snapshot_interval(); interval > 0) {
      if (next_snapshot == 0 || next_snapshot > clock.Now() + interval) next_snapshot = clock.Now() + interval;
      if (clock.Now() >= next_snapshot) {
        if (auto taken = Snapshot(args, *config, clock, false); !taken) {
          Note("wharf-agent: warning: " + taken.error().message);
          last_error = taken.error().message;
          next_snapshot = clock.Now() + std::min<int64_t>(interval, 60);  // soon again
        } else {
          next_snapshot = clock.Now() + interval;
        }
      }
    } else {
      next_snapshot = 0;
    }
    if (synced || now >= next_beat) {
      reporter.Report(ActiveNumber(*config), last_error.empty() ? service_error : last_error, clock.Now(), false,
                      ServiceStates(config->root), DevStates(config->root));
      next_beat = clock.Now() + args.heartbeat_seconds;
    }
    if (!ready) {
      NotifySystemd("READY=1\nSTATUS=syncing every " + std::to_string(args.interval_seconds) + " s");
      ready = true;
    }
    int64_t wake = std::min(next_sync, reporter.enabled() ? next_beat : next_sync);
    if (next_snapshot > 0) wake = std::min(wake, next_snapshot);
    int64_t wait = std::max<int64_t>(1, wake - clock.Now());
    if (watchdog_seconds > 0) wait = std::min(wait, watchdog_seconds);
    timespec timeout{static_cast<time_t>(wait), 0};
    int received = sigtimedwait(&signals, nullptr, &timeout);
    if (received == SIGCHLD) reconcile();  // a process server ended: start it again
    if (received == SIGINT || received == SIGTERM) {
      NotifySystemd("STOPPING=1");
      if (supervisor) supervisor->StopAll();
      // The services are stopped: the data is at rest, the best moment for a snapshot.
      if (auto taken = Snapshot(args, *config, clock, false); !taken)
        Note("wharf-agent: warning: " + taken.error().message);
      return kExitOk;
    }
  }
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
