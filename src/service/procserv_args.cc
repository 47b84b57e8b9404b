#include "service/procserv_args.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>

#include "base/file.h"
#include "service/trusted.h"

namespace wharf {
namespace {

std::unexpected<Error> Usage(std::string message) {
  return Fail(ErrorCode::kInvalidArgument, std::move(message) + " (see wharf-procserv --help)");
}

// `path` (absolute, from "/") under `root`.
std::string Under(const std::string& root, const std::string& path) {
  return root == "/" || root.empty() ? path : JoinPath(AbsolutePath(root), path.substr(1));
}

template <typename T>
bool ParseNumber(const std::string& text, T& value, int base = 10) {
  const char* end = text.data() + text.size();
  auto [ptr, error] = std::from_chars(text.data(), end, value, base);
  return !text.empty() && error == std::errc() && ptr == end;
}

Status IntIn(const std::string& option, const std::string& text, int low, int high, int& value) {
  if (!ParseNumber(text, value) || value < low || value > high)
    return Usage(option + " " + text + ": give a whole number from " + std::to_string(low) + " to " +
                 std::to_string(high));
  return {};
}

// "15", "TERM" or "SIGTERM".
int SignalNumberOf(const std::string& text) {
  int n = 0;
  if (ParseNumber(text, n)) return n >= 1 && n <= 64 ? n : 0;
  std::string_view name = text;
  if (name.starts_with("SIG")) name.remove_prefix(3);
  for (int s = 1; s < 32; ++s)
    if (const char* abbrev = sigabbrev_np(s); abbrev && name == abbrev) return s;
  return 0;
}

std::string KeyText(char key) {
  if (key == 0) return "none";
  if (key > 0 && key < 32) return std::string("^") + static_cast<char>(key + '@');
  return std::string(1, key);
}

Status CheckServiceName(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.' ||
      name.find('\0') != std::string::npos)
    return Usage("--name " + name + ": a service name has no '/' and no leading '.', and is not empty");
  return {};
}

// The options that take a value, and the one flag.
constexpr std::string_view kValued[] = {
    "--root",      "--name",       "--chdir",      "--env",         "--mode",     "--user",
    "--group",     "--holdoff",    "--stop-signal", "--grace",      "--console",  "--log-socket",
    "--socket-mode", "--socket-group", "--log-file", "--log-max",   "--log-keep", "--status",
    "--kill-key",  "--toggle-key", "--restart-key", "--fingerprint", "--spec",
    "--configuration"};

Result<ParsedProcServ> Parse(const std::vector<std::string>& args, bool from_spec) {
  ParsedProcServ parsed;
  ProcServOptions& o = parsed.options;
  std::string root = "/";
  std::optional<std::string> console, log_socket, log_file, status;
  bool have_name = false;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "-h" || arg == "--help") {
      parsed.help = true;
      return parsed;
    }
    if (arg.empty() || arg[0] != '-' || arg == "-") break;  // the command begins
    size_t equals = arg.find('=');
    std::string name = arg.substr(0, equals);
    if (name == "--timestamps") {
      if (equals != std::string::npos) return Usage("--timestamps takes no value");
      o.log_timestamps = true;
      continue;
    }
    bool known = false;
    for (std::string_view v : kValued) known = known || name == v;
    if (!known) return Usage("unknown option " + name);
    std::string value;
    if (equals != std::string::npos) {
      value = arg.substr(equals + 1);
    } else {
      if (i + 1 >= args.size()) return Usage(name + ": give a value");
      value = args[++i];
    }
    if (name == "--spec") {
      if (from_spec) return Usage("--spec in a spec file: a spec holds the arguments themselves");
      if (i != args.size() - 1 || i > 1)
        return Usage("--spec FILE comes alone: the file holds every argument");
      auto spec = ReadServiceSpec(value);
      if (!spec) return std::unexpected(spec.error());
      auto from = Parse(*spec, true);
      if (!from) return Prefix("spec " + value, from.error());
      return from;
    }
    if (name == "--root") {
      if (value.empty()) return Usage("--root: give a folder");
      root = value;
    } else if (name == "--name") {
      WHARF_TRY(CheckServiceName(value));
      o.name = value;
      have_name = true;
    } else if (name == "--chdir") {
      o.workdir = value;
    } else if (name == "--env") {
      if (value.empty() || value[0] == '=' || value.find('=') == std::string::npos)
        return Usage("--env " + value + ": give KEY=VALUE");
      o.env.push_back(value);
    } else if (name == "--mode") {
      if (value == "restart") o.mode = RestartMode::kRestart;
      else if (value == "on-failure") o.mode = RestartMode::kOnFailure;
      else if (value == "norestart") o.mode = RestartMode::kNoRestart;
      else if (value == "oneshot") o.mode = RestartMode::kOneShot;
      else return Usage("--mode " + value + ": give restart, on-failure, norestart or oneshot");
    } else if (name == "--user") {
      o.user = value;
    } else if (name == "--group") {
      o.group = value;
    } else if (name == "--holdoff") {
      WHARF_TRY(IntIn(name, value, 0, 86400, o.holdoff_seconds));
    } else if (name == "--stop-signal") {
      o.stop_signal = SignalNumberOf(value);
      if (o.stop_signal == 0) return Usage("--stop-signal " + value + ": give a signal, 1 to 64 or a name like TERM");
    } else if (name == "--grace") {
      WHARF_TRY(IntIn(name, value, 0, 86400, o.grace_seconds));
    } else if (name == "--console") {
      if (value.empty()) return Usage("--console: give a socket path");
      console = value;
    } else if (name == "--log-socket") {
      log_socket = value;
    } else if (name == "--socket-mode") {
      unsigned bits = 0;
      if (!ParseNumber(value, bits, 8) || bits > 0777 || (bits & 0002))
        return Usage("--socket-mode " + value + ": give octal permissions like 0660; sockets are never world-writable");
      o.socket_mode = static_cast<mode_t>(bits);
    } else if (name == "--socket-group") {
      o.socket_group = value;
    } else if (name == "--log-file") {
      log_file = value;
    } else if (name == "--log-max") {
      if (!ParseNumber(value, o.log_max_bytes) || o.log_max_bytes == 0)
        return Usage("--log-max " + value + ": give a size in bytes (at least 1)");
    } else if (name == "--log-keep") {
      WHARF_TRY(IntIn(name, value, 0, 100, o.log_keep));
    } else if (name == "--status") {
      status = value;
    } else if (name == "--kill-key" || name == "--toggle-key" || name == "--restart-key") {
      char& key = name == "--kill-key" ? o.kill_key : name == "--toggle-key" ? o.toggle_key : o.restart_key;
      if (!ParseConsoleKey(value, key)) return Usage(name + " " + value + ": a console key is ^A..^_, one character, or none");
    } else if (name == "--fingerprint") {
      parsed.fingerprint = value;
    } else if (name == "--configuration") {
      if (value.empty() || value.find('\0') != std::string::npos)
        return Usage("--configuration: give NAME@VERSION of a configuration package the service reads");
      o.configuration.push_back(value);
    }
  }
  o.argv.assign(args.begin() + static_cast<std::ptrdiff_t>(std::min(i, args.size())), args.end());
  if (!have_name) return Usage("--name NAME is required");
  if (o.argv.empty() || o.argv[0].empty()) return Usage("give the command after --");
  o.console_socket = console.value_or("");
  o.log_socket = log_socket.value_or("");
  o.log_file = log_file.value_or("");
  o.status_file = status.value_or("");
  DefaultServicePaths(o, root);
  for (auto [given, path] : {std::pair{&log_socket, &o.log_socket}, {&log_file, &o.log_file}, {&status, &o.status_file}})
    if (*given == "none") path->clear();
  return parsed;
}

}  // namespace

bool ParseConsoleKey(const std::string& text, char& key) {
  if (text == "none" || text.empty()) {
    key = 0;
    return true;
  }
  if (text.size() == 2 && text[0] == '^' && text[1] >= '@' && text[1] <= '_') {
    key = static_cast<char>(text[1] - '@');
    return true;
  }
  if (text.size() == 1) {
    key = text[0];
    return true;
  }
  return false;
}

Result<ParsedProcServ> ParseProcServArguments(const std::vector<std::string>& args) { return Parse(args, false); }

std::vector<std::string> ProcServArguments(const ProcServOptions& o, const std::string& fingerprint) {
  std::vector<std::string> a = {"--name", o.name};
  auto add = [&](const char* option, const std::string& value) {
    a.push_back(option);
    a.push_back(value);
  };
  if (!o.workdir.empty()) add("--chdir", o.workdir);
  for (const auto& kv : o.env) add("--env", kv);
  add("--mode", RestartModeName(o.mode));
  if (!o.user.empty()) add("--user", o.user);
  if (!o.group.empty()) add("--group", o.group);
  add("--holdoff", std::to_string(o.holdoff_seconds));
  add("--stop-signal", std::to_string(o.stop_signal));
  add("--grace", std::to_string(o.grace_seconds));
  if (!o.console_socket.empty()) add("--console", o.console_socket);
  add("--log-socket", o.log_socket.empty() ? "none" : o.log_socket);
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(o.socket_mode & 0777));
  add("--socket-mode", mode);
  if (!o.socket_group.empty()) add("--socket-group", o.socket_group);
  add("--log-file", o.log_file.empty() ? "none" : o.log_file);
  add("--log-max", std::to_string(o.log_max_bytes));
  add("--log-keep", std::to_string(o.log_keep));
  if (o.log_timestamps) a.push_back("--timestamps");
  add("--status", o.status_file.empty() ? "none" : o.status_file);
  add("--kill-key", KeyText(o.kill_key));
  add("--toggle-key", KeyText(o.toggle_key));
  add("--restart-key", KeyText(o.restart_key));
  for (const auto& config : o.configuration) add("--configuration", config);
  if (!fingerprint.empty()) add("--fingerprint", fingerprint);
  a.push_back("--");
  a.insert(a.end(), o.argv.begin(), o.argv.end());
  return a;
}

void DefaultServicePaths(ProcServOptions& o, const std::string& root) {
  if (o.console_socket.empty()) o.console_socket = Under(root, "/run/wharf/console/" + o.name + ".sock");
  if (o.log_socket.empty()) o.log_socket = Under(root, "/run/wharf/console/" + o.name + ".log.sock");
  if (o.status_file.empty()) o.status_file = Under(root, "/run/wharf/status/" + o.name + ".json");
  if (o.log_file.empty()) o.log_file = Under(root, "/var/log/wharf/" + o.name + ".log");
}

std::string ServiceSpecPath(const std::string& root, const std::string& name) {
  return Under(root, "/run/wharf/services/" + name + ".args");
}

Status WriteServiceSpec(const std::string& root, const std::string& name, const std::vector<std::string>& args) {
  std::string path = ServiceSpecPath(root, name);
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.')
    return Fail(ErrorCode::kInvalidArgument, path + ": a service name has no '/' and no leading '.', and is not empty");
  std::string data;
  for (const auto& arg : args) {
    if (arg.find('\0') != std::string::npos)
      return Fail(ErrorCode::kInvalidArgument, path + ": an argument holds a NUL byte, which a spec cannot carry");
    data += arg;
    data += '\0';
  }
  if (data.size() > kMaxServiceSpecBytes)
    return Fail(ErrorCode::kInvalidArgument, path + ": " + std::to_string(data.size()) + " bytes of arguments, more than " +
                                                 std::to_string(kMaxServiceSpecBytes) + "; shorten the definition");
  std::string folder = Dirname(path);
  auto parent = TrustedDir::Open(Dirname(folder), true);
  if (!parent) return Prefix(path, parent.error());
  // Only root (or the agent's user) reads the specs: they name users, groups and environments.
  if (::mkdirat(parent->fd(), Basename(folder).c_str(), 0700) != 0 && errno != EEXIST)
    return IoError("create folder", folder);
  auto dir = TrustedDir::Open(folder, false);
  if (!dir) return Prefix(path, dir.error());
  return dir->WriteAtomic(Basename(path), data, 0600);
}

Result<std::vector<std::string>> ReadServiceSpec(const std::string& path) {
  auto dir = TrustedDir::Open(Dirname(path), false);
  if (!dir) return Prefix("spec " + path, dir.error());
  auto data = dir->ReadFile(Basename(path), kMaxServiceSpecBytes);
  if (!data) return Prefix("spec", data.error());
  if (!data->empty() && data->back() != '\0')
    return Fail(ErrorCode::kCorrupt, "spec " + path + ": its last argument has no NUL after it (cut short?); "
                                     "write it again (WriteServiceSpec)");
  std::vector<std::string> args;
  size_t start = 0;
  while (start < data->size()) {
    size_t end = data->find('\0', start);
    args.push_back(data->substr(start, end - start));
    start = end + 1;
  }
  return args;
}

const char* ProcServUsage() {
  return R"(wharf-procserv: one service's process server: runs COMMAND on a pseudo-terminal, with a
console socket, a read-only output socket, a rotated log file, restarts with a hold-off and a
status file (docs/services.md).

Usage: wharf-procserv --name NAME [OPTIONS] -- COMMAND [ARGS...]
       wharf-procserv --spec FILE       (FILE: the arguments, each ended by a NUL byte)

  --root DIR            the FEC's root, for the default paths below (default /)
  --name NAME           service name (required)
  --chdir DIR           folder to start in, resolved at every start (default /)
  --env KEY=VALUE       added to the child's environment (repeatable)
  --mode MODE           restart, on-failure, norestart or oneshot (default restart)
  --user USER           run the child as USER (the server runs as root)
  --group GROUP         run the child with GROUP
  --holdoff S           seconds between two starts (default 15)
  --stop-signal SIG     signal that stops the child: 15, TERM, SIGTERM (default 15)
  --grace S             seconds before SIGKILL when stopping (default 10)
  --console PATH        console socket (default ROOT/run/wharf/console/NAME.sock)
  --log-socket PATH     read-only output socket (default ROOT/run/wharf/console/NAME.log.sock;
                        none: no socket)
  --socket-mode MODE    the sockets' permissions, octal, never world-writable (default 0660)
  --socket-group GROUP  the sockets' group, e.g. wharf
  --log-file PATH       log file (default ROOT/var/log/wharf/NAME.log; none: no file)
  --log-max BYTES       rotate the log at this size (default 10485760)
  --log-keep N          rotated logs kept, 0 to 100 (default 5)
  --timestamps          prefix log lines with the UTC time
  --status PATH         status file (default ROOT/run/wharf/status/NAME.json; none: no file)
  --kill-key KEY        console key that kills the child: ^X, one character or none (default ^X)
  --toggle-key KEY      key that cycles restart/norestart/oneshot (default ^T)
  --restart-key KEY     key that starts a stopped child (default ^R)
  --fingerprint TEXT    copied into the status file as "fingerprint" (for the supervisor)
  --configuration N@V   a configuration package the service reads, copied into the status
                        file's "configuration" list (repeatable; shown by `wharf-agent list -v`)
  --spec FILE           read the arguments from FILE: owned by root or you, writable by no
                        one else, no symlink, at most 1 MiB; nothing may follow it
  -h, --help            this text

Signals: SIGTERM stops the child and the server; SIGUSR1 stops the child, SIGUSR2 starts or
restarts it; SIGHUP reopens the log file. Exit codes: 0 stopped; 1 failed; 2 usage error.
)";
}

}  // namespace wharf
