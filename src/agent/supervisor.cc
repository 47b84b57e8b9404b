#include "agent/supervisor.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "archive/package_index.h"
#include "base/clock.h"
#include "base/file.h"
#include "agent/dev.h"
#include "agent/state.h"
#include "agent/daemon.h"
#include "crypto/sha256.h"
#include "service/procserv_args.h"
#include "service/trusted.h"

#include <nlohmann/json.hpp>

namespace wharf {
std::vector<DesiredService> DesiredServices(const Layout& layout, const Generation& generation,
                                            std::vector<std::string>& errors, std::vector<std::string>* held_back) {
  std::vector<DesiredService> out;
  auto dev = ReadDevList(layout);
  if (!dev) errors.push_back(dev.error().message);
  // The configuration packages of the generation, with the software each is made for,
  // and their archives' sha256: the version a service reads is part of its fingerprint.
  std::vector<ConfigurationMatches> configurations;
  std::map<std::string, std::string> configuration_sha256;  // NAME@VERSION -> archive sha256
  for (const auto& ref : generation.packages) {
    if (!IsConfiguration(ref)) continue;
    ConfigurationMatches config{ref.name + "@" + ref.version, {}};
    configuration_sha256[config.configuration] = ref.archive_sha256;
    auto json = ReadFile(layout.package_index(ref), 256u << 20);
    auto index = json ? ParsePackageIndex(*json) : std::unexpected(json.error());
    if (!index) errors.push_back(config.configuration + ": " + index.error().message);
    else
      for (const auto& m : index->matches) config.matches.push_back({m.name, m.version});
    configurations.push_back(std::move(config));
  }
  for (const auto& ref : generation.packages) {
    // A dev version is not run as a daemon: its prefix is the developer's tree now, and a
    // restart of the generation's service would run that.
    if (dev && dev->Find(ref.name)) {
      if (held_back) held_back->push_back(ref.name);
      continue;
    }
    auto json = ReadFile(layout.package_index(ref), 256u << 20);
    if (!json) {
      errors.push_back(json.error().message);
      continue;
    }
    auto index = ParsePackageIndex(*json);
    if (!index) {
      errors.push_back(index.error().message);
      continue;
    }
    auto services = ServicesFromJson(index->services);
    if (!services) {
      errors.push_back(ref.name + "@" + ref.version + ": " + services.error().message);
      continue;
    }
    for (auto& base : *services) {
      auto def = ApplyOverrides(base, generation.services);
      if (!def) {
        errors.push_back(ref.name + "@" + ref.version + ": " + def.error().message);
        continue;
      }
      if (def->dev) continue;  // development services run only where the generation says dev=false
      DesiredService s;
      s.def = *def;
      s.package = ref.name + "@" + ref.version;
      s.prefix = layout.prefix_link(ref);
      s.configuration = ConfigurationsRead(ref.name, def->configuration, configurations);
      std::string inputs = ref.archive_sha256 + "\n" + ServicesToJson({*def}) + "\n" + s.prefix;
      // Nothing added for a service that reads none: its fingerprint stays as it was.
      for (const auto& config : s.configuration)
        inputs += "\nconfiguration " + config + " " + configuration_sha256[config];
      s.fingerprint = Sha256Hex(inputs);
      out.push_back(std::move(s));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const DesiredService& a, const DesiredService& b) {
    return a.def.level < b.def.level;
  });
  return out;
}

ProcServOptions ServiceOptions(const std::string& root, const DesiredService& service) {
  const ServiceDef& d = service.def;
  auto under_prefix = [&](const std::string& path) {
    if (path.empty()) return service.prefix;
    return path.front() == '/' ? JoinPath(root, path) : JoinPath(service.prefix, path);
  };
  ProcServOptions o;
  o.name = d.name;
  o.workdir = under_prefix(d.workdir);
  o.argv.push_back(d.command.front() == '/' ? JoinPath(root, d.command) : JoinPath(service.prefix, d.command));
  o.argv.insert(o.argv.end(), d.args.begin(), d.args.end());
  for (const auto& [key, value] : d.env) o.env.push_back(key + "=" + value);
  o.user = d.user;
  o.group = d.group;
  o.mode = d.restart == "never" ? RestartMode::kNoRestart
           : d.restart == "on-failure" ? RestartMode::kOnFailure
                                       : RestartMode::kRestart;
  o.holdoff_seconds = d.holdoff;
  o.stop_signal = SignalNumber(d.stop_signal);
  o.grace_seconds = d.grace;
  o.configuration = service.configuration;
  return o;
}

Result<ProcServOptions> ServiceOptionsFromGeneration(const std::string& root, const std::string& name) {
  Layout layout(root);
  auto active = ReadActive(layout);
  if (!active) return std::unexpected(active.error());
  if (!*active)
    return Fail(ErrorCode::kNotFound, "no generation is active under " + layout.root() + "; run `wharf-agent sync`");
  std::vector<std::string> errors, held_back;
  for (const auto& service : DesiredServices(layout, (*active)->generation, errors, &held_back))
    if (service.def.name == name) return ServiceOptions(layout.root(), service);
  if (!held_back.empty()) {
    std::string names;
    for (const auto& p : held_back) names += (names.empty() ? "" : ", ") + p;
    return Fail(ErrorCode::kNotFound, "generation " + std::to_string((*active)->generation.number) +
                                          " has no service " + name + " to run here: the services of dev versions (" +
                                          names + ") are not started; `wharf-agent drop-dev NAME` brings the "
                                          "generation's back");
  }
  return Fail(ErrorCode::kNotFound, "generation " + std::to_string((*active)->generation.number) +
                                        " has no service " + name + " to run" +
                                        (errors.empty() ? "" : " (" + errors.front() + ")"));
}

Status Supervisor::Systemctl(const char* verb, const std::string& name) {
  std::vector<std::string> command = {"systemctl"};
  if (user_units_) command.push_back("--user");
  command.insert(command.end(), {verb, "wharf-svc@" + name + ".service"});
  pid_t pid = ::fork();
  if (pid < 0) return IoError("fork", "systemctl");
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : command) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Fail(ErrorCode::kUnavailable, "systemctl " + std::string(verb) + " wharf-svc@" + name +
                                             ".service failed; see `journalctl -u wharf-svc@" + name + "`");
  return {};
}

namespace {

struct ServerStatus {
  std::string name;
  pid_t server_pid = -1;
  uint64_t server_start = 0;
  std::string fingerprint;
};

// What the status files under ROOT/run/wharf/status say of the process servers.
std::vector<ServerStatus> ReadServerStatuses(const std::string& root) {
  std::vector<ServerStatus> out;
  std::string path = JoinPath(root, "run/wharf/status");
  auto dir = TrustedDir::Open(path, false);
  if (!dir) return out;
  for (const auto& name : ListDir(path).value_or(std::vector<std::string>{})) {
    if (!name.ends_with(".json") || name.starts_with(".")) continue;
    auto text = dir->ReadFile(name, 1 << 20);
    if (!text) continue;
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (!j.is_object() || !j["name"].is_string() || !j["server_pid"].is_number_integer() ||
        !j["server_start"].is_number_unsigned())
      continue;
    ServerStatus s;
    s.name = j["name"].get<std::string>();
    s.server_pid = j["server_pid"].get<pid_t>();
    s.server_start = j["server_start"].get<uint64_t>();
    if (j.contains("fingerprint") && j["fingerprint"].is_string()) s.fingerprint = j["fingerprint"].get<std::string>();
    if (s.name + ".json" == name && s.server_pid > 0) out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

std::vector<std::string> Supervisor::Adopt() {
  std::vector<std::string> actions;
  for (const auto& s : ReadServerStatuses(root_)) {
    if (running_.contains(s.name)) continue;
    if (!ProcessRuns(s.server_pid, s.server_start)) continue;  // it ended; its status file stayed
    Running r;
    r.pid = systemd_ ? 0 : s.server_pid;
    r.start_ticks = s.server_start;
    r.fingerprint = s.fingerprint;
    r.started_ms = MonotonicMs();
    running_[s.name] = std::move(r);
    actions.push_back("adopted " + s.name + " (process server " + std::to_string(s.server_pid) + ")");
  }
  return actions;
}

Status Supervisor::Start(const DesiredService& service) {
  Running r;
  r.service = service;
  r.fingerprint = service.fingerprint;
  r.level = service.def.level;
  r.started_ms = MonotonicMs();
  if (auto old = running_.find(service.def.name); old != running_.end()) r.quick_deaths = old->second.quick_deaths;
  // What to run goes into the service's spec file, which the process server reads: the
  // same for a unit that systemd starts again without the agent.
  ProcServOptions options = ServiceOptions(root_, service);
  if (!socket_group_.empty()) options.socket_group = socket_group_;
  DefaultServicePaths(options, root_);
  WHARF_TRY(WriteServiceSpec(root_, service.def.name, ProcServArguments(options, service.fingerprint)));
  if (systemd_) {
    WHARF_TRY(Systemctl("restart", service.def.name));
    r.pid = 0;
    running_[service.def.name] = std::move(r);
    return {};
  }
  if (::access(procserv_.c_str(), X_OK) != 0)
    return Fail(ErrorCode::kNotFound, "no process server program at " + procserv_ +
                                          " (wharf-procserv belongs beside wharf-agent); reinstall wharf");
  std::vector<std::string> command = {procserv_, "--spec", ServiceSpecPath(root_, service.def.name)};
  std::vector<char*> argv;
  for (auto& a : command) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return IoError("fork", service.def.name);
  if (pid == 0) {
    // A session of its own: the agent's signals, terminal and end are not the service's.
    ::setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  r.pid = pid;
  r.child = true;
  r.start_ticks = ProcessStartTicks(pid).value_or(0);
  running_[service.def.name] = std::move(r);
  return {};
}

bool Supervisor::Alive(Running& running) {
  if (running.pid <= 0) return running.pid == 0;  // 0: a systemd unit, systemd watches it
  if (running.child) {
    if (::waitpid(running.pid, nullptr, WNOHANG) == running.pid) return false;
    return true;
  }
  return ProcessRuns(running.pid, running.start_ticks);
}

void Supervisor::Stop(const std::string& name) {
  auto it = running_.find(name);
  if (it == running_.end()) return;
  Running& r = it->second;
  if (systemd_) (void)Systemctl("stop", name);
  if (r.pid > 0 && Alive(r)) {
    // The process server stops its child with the service's signal and grace.
    if (r.child) ::kill(r.pid, SIGTERM);
    else (void)SignalProcess(r.pid, r.start_ticks, SIGTERM, "the process server of " + name);
    int grace = r.service ? r.service->def.grace : 10;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(grace + 5);
    bool killed = false;
    auto next_hook = std::chrono::steady_clock::now();
    while (Alive(r)) {
      if (wait_hook_ && std::chrono::steady_clock::now() >= next_hook) {
        wait_hook_();
        next_hook += std::chrono::seconds(1);
      }
      if (!killed && std::chrono::steady_clock::now() > deadline) {
        if (r.child) ::kill(r.pid, SIGKILL);
        else (void)SignalProcess(r.pid, r.start_ticks, SIGKILL, "the process server of " + name);
        killed = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  running_.erase(it);
}

std::vector<std::string> Supervisor::Check() {
  std::vector<std::string> actions;
  int64_t now = MonotonicMs();
  for (auto& [name, r] : running_) {
    if (r.pid > 0 && !Alive(r)) {
      r.pid = -1;
      r.quick_deaths = DiedYoung(r.started_ms, now) ? r.quick_deaths + 1 : 0;
      int holdoff = r.service ? r.service->def.holdoff : kMinHoldoffSeconds;
      int64_t at = RestartAtMs(r.started_ms, holdoff, r.quick_deaths);
      actions.push_back("the process server of " + name + " ended; " +
                        (r.service ? (at <= now ? std::string("starting it again")
                                                : "starting it again in " + std::to_string((at - now + 999) / 1000) + " s")
                                   : std::string("it is not in the generation")));
    }
  }
  for (auto it = running_.begin(); it != running_.end();) {
    Running& r = it->second;
    auto next = std::next(it);
    if (r.pid > 0 && r.service && r.service->fingerprint != r.fingerprint &&
        now >= RestartAtMs(r.started_ms, r.service->def.holdoff, 0)) {
      // A change that waited out the hold-off (Reconcile): stop it, start what is wanted.
      DesiredService service = *r.service;
      std::string name = it->first;
      Stop(name);
      actions.push_back("stopped " + name);
      if (auto started = Start(service); !started)
        actions.push_back("cannot start " + name + ": " + started.error().message);
      else
        actions.push_back("started " + name + " (" + service.package + ")");
    } else if (r.pid < 0) {
      if (!r.service) {
        running_.erase(it);
      } else if (now >= RestartAtMs(r.started_ms, r.service->def.holdoff, r.quick_deaths)) {
        DesiredService service = *r.service;
        if (auto started = Start(service); !started)
          actions.push_back("cannot start " + service.def.name + ": " + started.error().message);
        else
          actions.push_back("started " + service.def.name + " (" + service.package + ") again");
      }
    }
    it = next;
  }
  return actions;
}

std::vector<std::string> Supervisor::Reconcile(const std::vector<DesiredService>& desired) {
  std::vector<std::string> actions = Check();
  // Said once: `run` reconciles every interval.
  std::set<std::string> dev;
  for (const auto& p : ReadDevList(Layout(root_)).value_or(DevList{}).packages) {
    dev.insert(p.name);
    if (!dev_noted_.contains(p.name))
      actions.push_back(p.name + " is a dev version here: its services are not started (until the next "
                        "generation or `wharf-agent drop-dev " + p.name + "`)");
  }
  dev_noted_ = std::move(dev);
  std::map<std::string, const DesiredService*> wanted;
  for (const auto& s : desired) wanted[s.def.name] = &s;
  // Stop what is gone or changed, highest level first. One that runs what is wanted is
  // kept, adopted or not: it learns its definition for later restarts.
  std::vector<std::pair<int, std::string>> to_stop;
  int64_t now = MonotonicMs();
  for (auto& [name, r] : running_) {
    auto it = wanted.find(name);
    bool changed = it == wanted.end() || it->second->fingerprint != r.fingerprint;
    if (!changed) {
      r.service = *it->second;
      r.level = it->second->def.level;
      continue;
    }
    // A change (a new package, definition or configuration) restarts it, but not sooner
    // than its hold-off after the start this agent made: it runs on until then, and Check
    // restarts it on what it now holds.
    if (it != wanted.end() && r.child && r.pid > 0) {
      int64_t at = RestartAtMs(r.started_ms, it->second->def.holdoff, 0);
      if (at > now) {
        bool said = r.service && r.service->fingerprint == it->second->fingerprint;
        r.service = *it->second;
        if (!said)
          actions.push_back("restarting " + name + " (" + it->second->package + ") in " +
                            std::to_string((at - now + 999) / 1000) + " s, after its hold-off");
        continue;
      }
    }
    to_stop.emplace_back(r.level, name);
  }
  std::sort(to_stop.rbegin(), to_stop.rend());
  for (const auto& [level, name] : to_stop) {
    bool ended = running_[name].pid < 0;
    Stop(name);
    if (!ended) actions.push_back("stopped " + name);
  }
  // Start what is missing, lowest level first (desired is in that order). One that ended
  // and waits out its hold-off is Check's.
  // A start that fails is tried again at every reconcile, and said again only when the
  // reason changes.
  std::map<std::string, std::string> failed;
  for (const auto& s : desired) {
    if (running_.contains(s.def.name)) continue;
    if (auto started = Start(s); !started) {
      if (start_failures_[s.def.name] != started.error().message)
        actions.push_back("cannot start " + s.def.name + ": " + started.error().message);
      failed[s.def.name] = started.error().message;
      continue;
    }
    actions.push_back("started " + s.def.name + " (" + s.package + ")");
  }
  start_failures_ = std::move(failed);
  return actions;
}

void Supervisor::StopAll() {
  std::vector<std::pair<int, std::string>> all;
  for (const auto& [name, r] : running_) all.emplace_back(r.level, name);
  std::sort(all.rbegin(), all.rend());
  for (const auto& [level, name] : all) Stop(name);
}

}  // namespace wharf
