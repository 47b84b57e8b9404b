#include "cli/service_cli.h"

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/file.h"
#include "base/strings.h"
#include "agent/state.h"
#include "agent/supervisor.h"
#include "archive/names.h"
#include "cli/output.h"
#include "service/procserv_args.h"
#include "service/trusted.h"

namespace wharf {
namespace {

constexpr const char* kProgram = "wharf-agent";
using nlohmann::ordered_json;

std::string Under(const std::string& root, const std::string& path) {
  return root == "/" || root.empty() ? path : JoinPath(AbsolutePath(root), path.substr(1));
}

// The runtime file at `path`, through its folder (service/trusted.h).
Result<UniqueFd> ConnectTo(const std::string& path) {
  auto dir = TrustedDir::Open(Dirname(path), false);
  if (!dir) return Prefix(path, dir.error());
  return dir->Connect(Basename(path));
}

// The status file of a service, as a trusted JSON object.
Result<ordered_json> ReadStatus(const std::string& path) {
  auto dir = TrustedDir::Open(Dirname(path), false);
  if (!dir) return Prefix(path, dir.error());
  auto text = dir->ReadFile(Basename(path), 1 << 20);
  if (!text) return std::unexpected(text.error());
  ordered_json j = ordered_json::parse(*text, nullptr, false);
  if (!j.is_object()) return Fail(ErrorCode::kCorrupt, path + ": unreadable status");
  return j;
}

// The process server a status file names, as (PID, start time); 0 when it names none.
std::pair<pid_t, uint64_t> ServerOf(const ordered_json& status) {
  auto number = [&](const char* key) -> int64_t {
    auto it = status.find(key);
    return it != status.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
  };
  int64_t pid = number("server_pid"), start = number("server_start");
  if (pid <= 1 || pid > INT32_MAX || start <= 0) return {0, 0};
  return {static_cast<pid_t>(pid), static_cast<uint64_t>(start)};
}

// Resident memory and CPU seconds of a process, from /proc.
void ProcStats(long pid, ordered_json& j) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with("VmRSS:")) j["rss_bytes"] = std::stoll(line.substr(6)) * 1024;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return;
  std::istringstream rest(text.substr(close + 2));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  if (fields.size() > 13) {
    double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    j["cpu_seconds"] = (std::stod(fields[11]) + std::stod(fields[12])) / ticks;  // utime + stime
  }
}

// A listening UNIX socket: mode, owner, and its queues (connections waiting to be
// accepted, and the backlog) as `ss -xl` shows them.
void SocketStats(const std::string& path, ordered_json& j) {
  struct stat st {};
  j["recv_q"] = nullptr;
  j["send_q"] = nullptr;
  if (::stat(path.c_str(), &st) != 0) {
    j["exists"] = false;
    return;
  }
  j["exists"] = true;
  if (FILE* ss = ::popen("ss -xln 2>/dev/null", "r")) {
    char line[4096];
    while (std::fgets(line, sizeof line, ss)) {
      std::istringstream fields(line);
      std::string netid, state, recv_q, send_q, local;
      fields >> netid >> state >> recv_q >> send_q >> local;
      if (local == path) {
        j["recv_q"] = std::atoll(recv_q.c_str());
        j["send_q"] = std::atoll(send_q.c_str());
      }
    }
    ::pclose(ss);
  }
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  j["mode"] = mode;
  j["uid"] = st.st_uid;
  j["gid"] = st.st_gid;
}

std::string Uptime(const ordered_json& s) {
  if (!s["started"].is_string()) return "-";
  auto started = ParseTime(s["started"].get<std::string>());
  if (!started) return "-";
  int64_t up = static_cast<int64_t>(::time(nullptr)) - *started;
  char buf[32];
  if (up >= 86400) std::snprintf(buf, sizeof buf, "%lldd%02lldh", (long long)(up / 86400), (long long)(up % 86400 / 3600));
  else if (up >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(up / 3600), (long long)(up % 3600 / 60));
  else std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(up / 60), (long long)(up % 60));
  return buf;
}

std::string LastExit(const ordered_json& s) {
  const auto& e = s["last_exit"];
  if (!e.is_object()) return "-";
  if (e["signal"].is_string()) return e["signal"].get<std::string>();
  return "exit " + std::to_string(e["code"].get<int>());
}

}  // namespace

ServicePaths PathsOf(const std::string& root, const std::string& service) {
  return {Under(root, "/run/wharf/console/" + service + ".sock"),
          Under(root, "/run/wharf/console/" + service + ".log.sock"),
          Under(root, "/run/wharf/status/" + service + ".json"),
          Under(root, "/var/log/wharf/" + service + ".log")};
}

// The process server is its own program, wharf-procserv, beside this one: the one parser
// of its arguments (service/procserv_args.h).
std::string ProcServBinary() { return JoinPath(Dirname(SelfBinary()), "wharf-procserv"); }

[[noreturn]] void ExecProcServ(const std::vector<std::string>& args) {
  std::string binary = ProcServBinary();
  std::vector<char*> argv = {binary.data()};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(binary.c_str(), argv.data());
  int error = errno;
  std::fprintf(stderr, "%s: error: cannot run the process server %s: %s; install wharf-procserv beside "
               "wharf-agent (cmake --install)\n", kProgram, binary.c_str(), std::strerror(error));
  std::exit(error == ENOENT ? kExitUsage : kExitFailure);
}

int RunProcServCommand(const std::vector<std::string>& args) {
  auto end = std::find(args.begin(), args.end(), "--");
  auto flag = std::find(args.begin(), end, "--from-generation");
  bool help = std::find(args.begin(), end, "--help") != end || std::find(args.begin(), end, "-h") != end;
  if (flag == end || help) ExecProcServ(args);
  // The service of the active generation: its settings, then the words given here (they
  // come later, so they win: --console, --socket-group, --timestamps, ...), checked by the
  // one parser, written as the service's spec and run from it.
  if (end != args.end())
    return ReportError(kProgram, {ErrorCode::kInvalidArgument, "procserv --from-generation: the generation gives "
                                                               "the command; give none after --"},
                       kExitUsage);
  std::vector<std::string> given(args.begin(), flag);
  given.insert(given.end(), flag + 1, args.end());
  std::string root = "/", name;
  for (size_t i = 0; i < given.size(); ++i) {
    for (auto [option, value] : {std::pair{"--root", &root}, std::pair{"--name", &name}}) {
      std::string prefix = std::string(option) + "=";
      if (given[i] == option && i + 1 < given.size()) *value = given[i + 1];
      else if (given[i].starts_with(prefix)) *value = given[i].substr(prefix.size());
    }
  }
  if (name.empty())
    return ReportError(kProgram, {ErrorCode::kInvalidArgument, "procserv --from-generation: give --name NAME"},
                       kExitUsage);
  auto defined = ServiceOptionsFromGeneration(root, name);
  if (!defined) return ReportError(kProgram, defined.error());
  DefaultServicePaths(*defined, root);
  std::vector<std::string> words = ProcServArguments(*defined, "");
  words.insert(std::find(words.begin(), words.end(), "--"), given.begin(), given.end());
  auto parsed = ParseProcServArguments(words);
  if (!parsed) return ReportError(kProgram, parsed.error(), kExitUsage);
  if (auto written = WriteServiceSpec(root, name, ProcServArguments(parsed->options, parsed->fingerprint)); !written)
    return ReportError(kProgram, written.error());
  ExecProcServ({"--spec", ServiceSpecPath(root, name)});
}

int RunAttach(const std::string& root, const std::string& service, const std::string& socket,
              bool read_only) {
  ServicePaths paths = PathsOf(root, service);
  std::string path = !socket.empty() ? socket : read_only ? paths.log_socket : paths.console;
  auto fd = ConnectTo(path);
  if (!fd) return ReportError(kProgram, fd.error());
  bool tty = ::isatty(0);
  termios saved{};
  if (tty) {
    ::tcgetattr(0, &saved);
    termios raw = saved;
    ::cfmakeraw(&raw);
    ::tcsetattr(0, TCSANOW, &raw);
    std::fprintf(stderr, "attached to %s; ^] detaches\r\n", path.c_str());
  }
  ::signal(SIGPIPE, SIG_IGN);
  bool input_open = !read_only;
  bool input_ended = false;
  char buf[65536];
  int code = kExitOk;
  for (;;) {
    pollfd fds[2] = {{fd->get(), POLLIN, 0}, {input_open ? 0 : -1, POLLIN, 0}};
    // Input from a pipe has ended: show what the child answers for a moment, then go.
    int ready = ::poll(fds, 2, input_ended ? 500 : -1);
    if (ready == 0) break;
    if (ready < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) {
      ssize_t n = ::read(fd->get(), buf, sizeof buf);
      if (n <= 0) break;  // the server went away
      if (!WriteAll(1, buf, static_cast<size_t>(n), "stdout")) break;
    }
    if (fds[1].revents) {
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n <= 0) {
        input_open = false;
        input_ended = true;
        continue;
      }
      if (tty) {
        void* detach = std::memchr(buf, 0x1d, static_cast<size_t>(n));  // ^]
        if (detach) {
          n = static_cast<char*>(detach) - buf;
          if (n > 0) (void)WriteAll(fd->get(), buf, static_cast<size_t>(n), path);
          break;
        }
      }
      if (!WriteAll(fd->get(), buf, static_cast<size_t>(n), path)) break;
    }
  }
  if (tty) {
    ::tcsetattr(0, TCSANOW, &saved);
    std::fprintf(stderr, "\ndetached from %s\n", path.c_str());
  }
  return code;
}

ordered_json ReadServiceStatuses(const std::string& root) {
  std::string path = Under(root, "/run/wharf/status");
  ordered_json all = ordered_json::array();
  auto dir = TrustedDir::Open(path, false);
  if (!dir) {
    if (dir.error().code != ErrorCode::kNotFound) std::fprintf(stderr, "%s: note: %s\n", kProgram, dir.error().message.c_str());
    return all;
  }
  for (const auto& name : ListDir(path).value_or(std::vector<std::string>{})) {
    if (!name.ends_with(".json") || name.starts_with(".")) continue;
    auto text = dir->ReadFile(name, 1 << 20);
    if (!text) {
      std::fprintf(stderr, "%s: note: skipped %s\n", kProgram, text.error().message.c_str());
      continue;
    }
    ordered_json s = ordered_json::parse(*text, nullptr, false);
    auto is = [&](const char* key, bool (ordered_json::*type)() const noexcept) {
      return s.contains(key) && (s[key].*type)();
    };
    if (!s.is_object() || !is("name", &ordered_json::is_string) || !is("state", &ordered_json::is_string) ||
        !is("restarts", &ordered_json::is_number_integer) || !is("console_clients", &ordered_json::is_number_integer)) {
      std::fprintf(stderr, "%s: note: skipped %s: not a status file\n", kProgram, dir->Shown(name).c_str());
      continue;
    }
    // A server that died without a word: its child may still run, but nobody watches it.
    // Its PID may belong to another process by now: the start time tells.
    auto [pid, start] = ServerOf(s);
    auto old_pid = s.find("server_pid");  // an older process server wrote no start time
    bool alive = pid > 0 ? ProcessStartTicks(pid).value_or(0) == start
                         : old_pid != s.end() && old_pid->is_number_integer() && old_pid->get<int64_t>() > 1 &&
                               old_pid->get<int64_t>() <= INT32_MAX &&
                               ::kill(static_cast<pid_t>(old_pid->get<int64_t>()), 0) == 0;
    if (!alive) {
      s["state"] = "dead";
      s["pid"] = nullptr;
    }
    all.push_back(std::move(s));
  }
  return all;
}

std::string SelfBinary() {
  char path[4096];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  return n > 0 ? std::string(path, static_cast<size_t>(n)) : "/usr/bin/wharf-agent";
}

// The configuration versions the active generation gives each of its services (what a
// service started with may be older: it waits out its hold-off, or the agent is down).
std::map<std::string, std::vector<std::string>> GenerationConfigurations(const std::string& root) {
  std::map<std::string, std::vector<std::string>> out;
  Layout layout(root.empty() ? "/" : root);
  auto active = ReadActive(layout);
  if (!active || !*active) return out;
  std::vector<std::string> errors;
  for (const auto& service : DesiredServices(layout, (*active)->generation, errors))
    out[service.def.name] = service.configuration;
  return out;
}

int RunList(const std::string& root, int verbosity, bool json) {
  std::string dir = Under(root, "/run/wharf/status");
  ordered_json all = ReadServiceStatuses(root);
  auto wanted = verbosity >= 1 || json ? GenerationConfigurations(root)
                                       : std::map<std::string, std::vector<std::string>>{};
  for (auto& s : all) {
    s["uptime"] = Uptime(s);
    // "configuration": the versions it started with (from its process server); beside
    // them those of the active generation, so that one still on an old version is seen.
    if (!s.contains("configuration") || !s["configuration"].is_array()) s["configuration"] = ordered_json::array();
    if (auto it = wanted.find(s["name"].get<std::string>()); it != wanted.end())
      s["configuration_generation"] = it->second;
    else if (verbosity >= 1 || json)
      s["configuration_generation"] = nullptr;  // not a service of the active generation
    if (verbosity >= 1 && s["pid"].is_number()) ProcStats(s["pid"].get<long>(), s);
    if (verbosity >= 2) {
      ordered_json sock;
      SocketStats(s.value("console_socket", ""), sock);
      s["console_socket_info"] = sock;
      struct stat st {};
      std::string log = s.value("log_file", "");
      s["log_bytes"] = !log.empty() && ::stat(log.c_str(), &st) == 0 ? ordered_json(st.st_size) : ordered_json(nullptr);
    }
  }
  if (json) {
    std::printf("%s\n", all.dump(2, ' ', false, ordered_json::error_handler_t::replace).c_str());
    return kExitOk;
  }
  if (all.empty()) {
    std::printf("no services under %s\n", dir.c_str());
    return kExitOk;
  }
  PrintHuman(stdout, "%-20s %-9s %8s %9s %8s %-10s", "SERVICE", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT");
  if (verbosity >= 1) PrintHuman(stdout, " %7s %8s %9s", "CLIENTS", "CPU s", "RSS");
  PrintHuman(stdout, "\n");
  for (const auto& s : all) {
    std::string pid = s["pid"].is_number() ? std::to_string(s["pid"].get<long>()) : "-";
    PrintHuman(stdout, "%-20s %-9s %8s %9s %8d %-10s", s["name"].get<std::string>().c_str(),
                s["state"].get<std::string>().c_str(), pid.c_str(), s["uptime"].get<std::string>().c_str(),
                s["restarts"].get<int>(), LastExit(s).c_str());
    if (verbosity >= 1) {
      char cpu[32] = "-";
      if (s.contains("cpu_seconds")) std::snprintf(cpu, sizeof cpu, "%.2f", s["cpu_seconds"].get<double>());
      PrintHuman(stdout, " %7d %8s %9s", s["console_clients"].get<int>(), cpu,
                  s.contains("rss_bytes") ? HumanBytes(s["rss_bytes"].get<uint64_t>()).c_str() : "-");
    }
    PrintHuman(stdout, "\n");
    if (verbosity >= 1) {
      auto words = [](const ordered_json& list) {
        std::string text;
        for (const auto& item : list)
          if (item.is_string()) text += (text.empty() ? "" : ", ") + item.get<std::string>();
        return text.empty() ? std::string("none") : text;
      };
      std::string started = words(s["configuration"]);
      const ordered_json& now = s["configuration_generation"];
      bool stale = now.is_array() && words(now) != started;
      if (started != "none" || stale)
        PrintHuman(stdout, "    configuration %s%s\n", started.c_str(),
                   stale ? (" (OLD: the active generation has " + words(now) + ")").c_str() : "");
    }
    if (verbosity >= 2) {
      const auto& sock = s["console_socket_info"];
      PrintHuman(stdout, "    console %s (%s)\n", s.value("console_socket", "").c_str(),
                  sock.value("exists", false)
                      ? (sock["mode"].get<std::string>() + " uid " + std::to_string(sock["uid"].get<int>()) +
                         " gid " + std::to_string(sock["gid"].get<int>()) + ", Recv-Q " +
                         (sock["recv_q"].is_null() ? "?" : sock["recv_q"].dump()) + " Send-Q " +
                         (sock["send_q"].is_null() ? "?" : sock["send_q"].dump())).c_str()
                      : "missing");
      PrintHuman(stdout, "    log     %s (%s)\n", s.value("log_file", "").c_str(),
                  s["log_bytes"].is_number() ? HumanBytes(s["log_bytes"].get<uint64_t>()).c_str() : "none");
      for (const auto& line : s.value("last_lines", ordered_json::array()))
        PrintHuman(stdout, "    | %s\n", line.get<std::string>().c_str());
    }
  }
  return kExitOk;
}

int RunControl(const std::string& root, const std::string& service, const std::string& verb) {
  ServicePaths paths = PathsOf(root, service);
  auto status = ReadStatus(paths.status);
  if (!status) {
    if (status.error().code == ErrorCode::kNotFound)
      return ReportError(kProgram, {ErrorCode::kNotFound, service + ": no such service under " +
                                                              (root.empty() ? "/" : root) + " (`wharf-agent list`)"});
    return ReportError(kProgram, status.error());
  }
  auto [pid, start] = ServerOf(*status);
  if (pid <= 0)
    return ReportError(kProgram, {ErrorCode::kCorrupt, paths.status + ": names no process server with its start "
                                                       "time (written by an older wharf-agent?); restart the "
                                                       "service's process server, or the agent"});
  if (verb == "start" && status->value("state", "") == "running") {
    std::fprintf(stderr, "%s is already running\n", service.c_str());
    return kExitOk;
  }
  int signal = verb == "stop" ? SIGUSR1 : SIGUSR2;
  if (auto sent = SignalProcess(pid, start, signal, service + ": its process server"); !sent)
    return ReportError(kProgram, sent.error());
  std::fprintf(stderr, "%s: %s requested\n", service.c_str(), verb.c_str());
  return kExitOk;
}

extern const char* const kAgentUnit;
extern const char* const kServiceUnit;

int RunInstallUnits(bool user, const std::string& root, const std::string& dest,
                    const std::string& console_group) {
  const char* home = std::getenv("HOME");
  if (user && dest.empty() && !home)
    return ReportError(kProgram, {ErrorCode::kInvalidArgument, "--user needs $HOME"}, kExitUsage);
  std::string dir = !dest.empty() ? dest : user ? std::string(home) + "/.config/systemd/user" : "/etc/systemd/system";
  std::string env_file = !dest.empty() ? JoinPath(dest, "agent.env")
                         : user       ? std::string(home) + "/.config/wharf/agent.env"
                                      : "/etc/wharf/agent.env";
  std::string agent = SelfBinary();
  std::string procserv = JoinPath(Dirname(agent), "wharf-procserv");
  auto render = [&](std::string text) {
    for (size_t at; (at = text.find("@WHARF_AGENT@")) != std::string::npos;) text.replace(at, 13, agent);
    for (size_t at; (at = text.find("@WHARF_PROCSERV@")) != std::string::npos;) text.replace(at, 16, procserv);
    for (size_t at; (at = text.find("/etc/wharf/agent.env")) != std::string::npos;) text.replace(at, 20, "\x01");
    for (size_t at; (at = text.find('\x01')) != std::string::npos;) text.replace(at, 1, env_file);
    return text;
  };
  std::string absolute_root = AbsolutePath(root.empty() ? "/" : root);
  for (auto [name, text] : {std::pair{"wharf-agent.service", kAgentUnit}, std::pair{"wharf-svc@.service", kServiceUnit}}) {
    if (auto made = MakeDirs(dir); !made) return ReportError(kProgram, made.error());
    if (auto written = WriteFileAtomic(JoinPath(dir, name), render(text), 0644); !written)
      return ReportError(kProgram, written.error());
    std::fprintf(stderr, "wrote %s\n", JoinPath(dir, name).c_str());
  }
  if (auto made = MakeDirs(Dirname(env_file)); !made) return ReportError(kProgram, made.error());
  std::string env = "WHARF_ROOT=" + absolute_root + "\nWHARF_CONSOLE_GROUP=" + console_group + "\n";
  if (auto written = WriteFileAtomic(env_file, env, 0644); !written) return ReportError(kProgram, written.error());
  std::fprintf(stderr, "wrote %s\n", env_file.c_str());
  if (dest.empty()) {
    std::string reload = std::string("systemctl ") + (user ? "--user " : "") + "daemon-reload";
    if (std::system(reload.c_str()) != 0)
      std::fprintf(stderr, "note: `%s` failed (is systemd running here?); run it before enabling\n", reload.c_str());
    std::fprintf(stderr, "enable with: systemctl %senable --now wharf-agent.service\n", user ? "--user " : "");
  }
  return kExitOk;
}

int RunLogs(const std::string& root, const std::string& service, bool follow) {
  ServicePaths paths = PathsOf(root, service);
  if (follow) return RunAttach(root, service, "", true);
  auto dir = TrustedDir::Open(Dirname(paths.log_file), false);
  if (!dir) return ReportError(kProgram, Prefix(paths.log_file, dir.error()).error());
  auto fd = dir->OpenFile(Basename(paths.log_file));
  if (!fd) return ReportError(kProgram, fd.error());
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd->get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ReportError(kProgram, IoError("read", paths.log_file).error());
    if (n == 0) return kExitOk;
    if (std::fwrite(buf, 1, static_cast<size_t>(n), stdout) != static_cast<size_t>(n)) return kExitFailure;
  }
}

int RunServiceEntry(const std::vector<std::string>& args) {
  auto usage = [](const std::string& why) {
    return ReportError(kProgram,
                       {ErrorCode::kInvalidArgument,
                        "svc: " + why + "; usage: wharf-agent svc list | wharf-agent svc start|stop|restart|"
                                        "attach|logs SERVICE (no options; the root is always /)"},
                       kExitUsage);
  };
  for (const auto& arg : args)
    if (arg.starts_with("-")) return usage("it takes no options");
  if (args.empty()) return usage("give a verb");
  const std::string& verb = args[0];
  if (verb == "list") return args.size() == 1 ? RunList("/", 0, false) : usage("list takes no service");
  if (verb != "start" && verb != "stop" && verb != "restart" && verb != "attach" && verb != "logs")
    return usage("not a verb of svc");
  if (args.size() != 2) return usage(verb + " takes one service name");
  const std::string& name = args[1];
  if (auto valid = ValidateServiceName(name); !valid) return ReportError(kProgram, valid.error(), kExitUsage);
  // Only the services this FEC's active generation declares: not whatever has a status file
  // or a log.
  if (auto declared = ServiceOptionsFromGeneration("/", name); !declared)
    return ReportError(kProgram, {declared.error().code, name + ": not a service of this FEC's active generation; "
                                                         "refusing (`wharf-agent svc list`): " +
                                                             declared.error().message});
  if (verb == "attach") return RunAttach("/", name, "", false);
  if (verb == "logs") return RunLogs("/", name, false);
  return RunControl("/", name, verb);
}

}  // namespace wharf
