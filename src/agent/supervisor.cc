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
#include "crypto/sha256.h"

namespace wharf {
std::vector<DesiredService> DesiredServices(const Layout& layout, const Generation& generation,
                                            std::vector<std::string>& errors, std::vector<std::string>* held_back) {
  std::vector<DesiredService> out;
  auto dev = ReadDevList(layout);
  if (!dev) errors.push_back(dev.error().message);
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
      s.fingerprint = Sha256Hex(ref.archive_sha256 + "\n" + ServicesToJson({*def}) + "\n" + s.prefix);
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

Status Supervisor::Start(const DesiredService& service) {
  if (systemd_) {
    WHARF_TRY(Systemctl("restart", service.def.name));
    running_[service.def.name] = {0, service, MonotonicMs()};
    return {};
  }
  std::vector<std::string> command = {agent_, "procserv", "--root", root_, "--name", service.def.name,
                                      "--from-generation"};
  if (!socket_group_.empty()) command.insert(command.end(), {"--socket-group", socket_group_});
  pid_t pid = ::fork();
  if (pid < 0) return IoError("fork", service.def.name);
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    std::vector<char*> argv;
    for (auto& a : command) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  running_[service.def.name] = {pid, service, MonotonicMs()};
  return {};
}

void Supervisor::Stop(const std::string& name) {
  auto it = running_.find(name);
  if (it == running_.end()) return;
  pid_t pid = it->second.pid;
  if (systemd_) (void)Systemctl("stop", name);
  if (pid > 0) {
    ::kill(pid, SIGTERM);  // the process server stops its child with the service's signal
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(it->second.service.def.grace + 5);
    while (::waitpid(pid, nullptr, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  running_.erase(it);
}

void Supervisor::Reap() {
  for (auto& [name, running] : running_) {
    if (running.pid > 0 && ::waitpid(running.pid, nullptr, WNOHANG) == running.pid) running.pid = -1;
  }
}

std::vector<std::string> Supervisor::Reconcile(const std::vector<DesiredService>& desired) {
  std::vector<std::string> actions;
  Reap();
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
  // Stop what is gone or changed, highest level first.
  std::vector<std::pair<int, std::string>> to_stop;
  for (const auto& [name, running] : running_) {
    auto it = wanted.find(name);
    bool changed = it == wanted.end() || it->second->fingerprint != running.service.fingerprint;
    bool died = running.pid < 0;
    if (died && !changed &&
        MonotonicMs() - running.started_ms < std::max(5, running.service.def.holdoff) * int64_t{1000}) {
      continue;  // died young: it waits out its hold-off (a later round starts it)
    }
    if (changed || died) to_stop.emplace_back(running.service.def.level, name);
  }
  std::sort(to_stop.rbegin(), to_stop.rend());
  for (const auto& [level, name] : to_stop) {
    bool died = running_[name].pid < 0;
    Stop(name);
    actions.push_back(died ? "the process server of " + name + " ended; starting it again" : "stopped " + name);
  }
  // Start what is missing, lowest level first (desired is in that order).
  for (const auto& s : desired) {
    if (running_.contains(s.def.name)) continue;
    if (auto started = Start(s); !started) {
      actions.push_back("cannot start " + s.def.name + ": " + started.error().message);
      continue;
    }
    actions.push_back("started " + s.def.name + " (" + s.package + ")");
  }
  return actions;
}

void Supervisor::StopAll() {
  std::vector<std::pair<int, std::string>> all;
  for (const auto& [name, running] : running_) all.emplace_back(running.service.def.level, name);
  std::sort(all.rbegin(), all.rend());
  for (const auto& [level, name] : all) Stop(name);
}

}  // namespace wharf
