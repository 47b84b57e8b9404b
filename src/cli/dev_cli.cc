#include "cli/dev_cli.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "agent/dev.h"
#include "agent/layout.h"
#include "archive/names.h"
#include "archive/pack.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/strings.h"
#include "cli/output.h"

namespace wharf {
namespace {

using nlohmann::ordered_json;

// A folder under $TMPDIR for the packed files, removed with the object.
class TempFolder {
 public:
  static Result<TempFolder> Make() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = JoinPath(base && *base ? base : "/tmp", "wharf-dev-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) return IoError("create a temporary folder like", pattern);
    return TempFolder(pattern);
  }
  TempFolder(TempFolder&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  TempFolder& operator=(TempFolder&&) = delete;
  ~TempFolder() {
    if (!path_.empty()) (void)RemoveTree(path_);
  }
  const std::string& path() const { return path_; }

 private:
  explicit TempFolder(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

std::string ShellQuote(const std::string& word) {
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// What both sides print: the agent's answer, so that ssh hands it back unchanged.
void PrintInstalled(const DevOutcome& o, bool dry_run, bool json) {
  const DevPackage& p = o.package;
  if (json) {
    ordered_json j{{"fec", o.fec}, {"generation", o.generation}, {"action", "install-dev"}, {"dry_run", dry_run},
                   {"name", p.name}, {"version", "dev"}, {"sha256", p.sha256}, {"prefix", p.prefix},
                   {"replaces", p.replaces ? ordered_json(*p.replaces) : ordered_json(nullptr)},
                   {"installed", FormatTime(p.installed)}, {"profile", "profiles/" + o.profile},
                   {"entries", o.entries}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::string place = p.replaces ? "in place of " + p.name + " " + *p.replaces + " of generation " +
                                       std::to_string(o.generation)
                                 : "beside generation " + std::to_string(o.generation) + ", which does not have it";
  if (dry_run) {
    std::printf("dry run: %s: %s@dev would go to %s %s (checked: %zu entries, every frame and sha256)\n",
                o.fec.c_str(), p.name.c_str(), p.prefix.c_str(), place.c_str(), o.entries);
    return;
  }
  std::printf("%s: %s@dev installed at %s %s (sha256 %s%s)\n", o.fec.c_str(), p.name.c_str(), p.prefix.c_str(),
              place.c_str(), p.sha256.substr(0, 8).c_str(), o.unpacked ? "" : ", the same bytes as before");
  std::printf("%s: DEV %s stays until the next generation or `wharf-agent drop-dev %s`; its services are not started\n",
              o.fec.c_str(), p.name.c_str(), p.name.c_str());
}

void PrintDropped(const DevOutcome& o, bool dry_run, bool json) {
  const DevPackage& p = o.package;
  if (json) {
    ordered_json j{{"fec", o.fec}, {"generation", o.generation}, {"action", "drop-dev"}, {"dry_run", dry_run},
                   {"name", p.name}, {"prefix", p.prefix},
                   {"restored", p.replaces ? ordered_json(*p.replaces) : ordered_json(nullptr)},
                   {"profile", "profiles/" + o.profile}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::string after = p.replaces ? p.name + " " + *p.replaces + " of generation " + std::to_string(o.generation) +
                                       " is back at " + p.prefix
                                 : p.prefix + " is gone (generation " + std::to_string(o.generation) +
                                       " does not have " + p.name + ")";
  std::printf("%s%s: %s the dev version of %s: %s\n", dry_run ? "dry run: " : "", o.fec.c_str(),
              dry_run ? "would drop" : "dropped", p.name.c_str(), after.c_str());
}

// Sends the dev stream to `ssh HOST <agent> install-dev ...` and returns the exit code to
// give: the remote's own 0, 1 or 2 (its message came through on stderr), else 1 with a line
// saying what failed.
int SendOverSsh(const DevDeployArgs& args, const std::string& index_json, const std::string& archive_path,
                uint64_t archive_size) {
  constexpr const char* kProgram = "wharf";
  std::string remote = args.remote_agent + " install-dev --name " + ShellQuote(args.name);
  if (!args.remote_root.empty()) remote += " --root " + ShellQuote(args.remote_root);
  if (args.dry_run) remote += " --dry-run";
  if (args.json) remote += " --json";
  std::vector<std::string> command;
  for (auto& word : Split(args.ssh, ' '))
    if (!word.empty()) command.push_back(word);
  if (command.empty())
    return ReportError(kProgram, {ErrorCode::kInvalidArgument, "--ssh is empty: give the ssh command"}, kExitUsage);
  command.insert(command.end(), {args.fec, remote});
  int data[2], exec_status[2];
  if (::pipe2(data, O_CLOEXEC) != 0 || ::pipe2(exec_status, O_CLOEXEC) != 0)
    return ReportError(kProgram, IoError("make a pipe for", command.front()).error());
  UniqueFd data_read(data[0]), data_write(data[1]), status_read(exec_status[0]), status_write(exec_status[1]);
  pid_t pid = ::fork();
  if (pid < 0) return ReportError(kProgram, IoError("fork", command.front()).error());
  if (pid == 0) {
    ::dup2(data_read.get(), STDIN_FILENO);
    std::vector<char*> argv;
    for (auto& a : command) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    int error = errno;
    (void)!::write(status_write.get(), &error, sizeof error);
    _exit(127);
  }
  data_read = UniqueFd();
  status_write = UniqueFd();
  int exec_error = 0;
  if (::read(status_read.get(), &exec_error, sizeof exec_error) == static_cast<ssize_t>(sizeof exec_error)) {
    ::waitpid(pid, nullptr, 0);
    return ReportError(kProgram, {ErrorCode::kNotFound, "cannot run `" + command.front() + "`: " +
                                                            std::strerror(exec_error) +
                                                            "; install an ssh client or pass --ssh CMD"});
  }
  // A remote side that refuses stops reading: its own error line says why, not EPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  std::string header = DevStreamHeader(index_json.size(), archive_size);
  Status sent = WriteAll(data_write.get(), header.data(), header.size(), "the ssh pipe");
  if (sent) sent = WriteAll(data_write.get(), index_json.data(), index_json.size(), "the ssh pipe");
  if (sent)
    sent = ReadChunks(archive_path, [&](const char* bytes, size_t size) {
      return WriteAll(data_write.get(), bytes, size, "the ssh pipe");
    });
  data_write = UniqueFd();  // the end of the stream
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string where = args.fec + ": ";
  if (WIFSIGNALED(status))
    return ReportError(kProgram, {ErrorCode::kUnavailable, where + "`" + command.front() + "` was killed by SIG" +
                                                               sigabbrev_np(WTERMSIG(status))});
  int code = WEXITSTATUS(status);
  if (code == kExitOk && !sent) return ReportError(kProgram, sent.error());
  if (code == kExitOk || code == kExitFailure || code == kExitUsage) return code;
  if (code == 255)
    return ReportError(kProgram, {ErrorCode::kUnavailable, where + "ssh failed (exit 255); check that `" + args.ssh +
                                                               " " + args.fec + " true` works"});
  if (code == 126 || code == 127)
    return ReportError(kProgram, {ErrorCode::kNotFound, where + "`" + args.remote_agent + "` could not run there (exit " +
                                                            std::to_string(code) +
                                                            "); install wharf-agent on the FEC or pass --remote-agent PATH"});
  return ReportError(kProgram, {ErrorCode::kUnavailable, where + "the remote install-dev ended with exit " +
                                                             std::to_string(code)});
}

}  // namespace

int RunDevDeploy(const DevDeployArgs& given) {
  constexpr const char* kProgram = "wharf";
  DevDeployArgs args = given;
  auto usage = [&](const std::string& message) {
    return ReportError(kProgram, {ErrorCode::kInvalidArgument, message}, kExitUsage);
  };
  if (auto valid = ValidatePackageName(args.name); !valid) return usage("--name: " + valid.error().message);
  if (auto valid = ValidatePrefix(args.prefix); !valid) return usage("--prefix: " + valid.error().message);
  if (args.fec.empty() == args.root.empty())
    return usage("say where: --fec HOST (over ssh) or --root DIR (a FEC folder on this machine), one of them");
  if (!args.root.empty() && !args.remote_root.empty())
    return usage("--remote-root goes with --fec; with --root the FEC folder is on this machine");
  if (args.ssh.empty()) {
    const char* ssh = std::getenv("WHARF_SSH");
    args.ssh = ssh && *ssh ? ssh : "ssh";
  }
  std::vector<ServiceDef> services;
  for (const auto& spec : args.service_specs) {
    auto parsed = ParseServiceSpec(spec);
    if (!parsed) return usage("--service: " + parsed.error().message);
    services.push_back(*parsed);
  }
  if (auto added = AddTreeServices(args.dir, "", services); !added) return ReportError(kProgram, added.error());
  auto out = TempFolder::Make();
  if (!out) return ReportError(kProgram, out.error());
  PackOptions options;
  options.name = args.name;
  options.version = "dev";
  options.prefix = args.prefix;
  options.out_dir = out->path();
  options.level = args.level;
  options.services = ServicesToJson(services);
  auto packed = PackTree(args.dir, options);
  if (!packed) return ReportError(kProgram, packed.error());
  auto index_json = ReadFile(packed->index_path, kMaxDevIndexBytes);
  if (!index_json) return ReportError(kProgram, index_json.error());
  const PackageIndex& index = packed->index;
  Note("wharf: " + args.name + "@dev packed: " + std::to_string(index.files.size()) + " entries, " +
       HumanBytes(index.raw_size) + " -> " + HumanBytes(index.archive_size) +
       (args.dry_run ? "; checking on " : "; installing on ") +
       (args.root.empty() ? args.fec : args.root));
  if (args.root.empty()) return SendOverSsh(args, *index_json, packed->archive_path, index.archive_size);
  auto outcome = InstallDev(Layout(args.root), args.name, {*index_json, packed->archive_path}, SystemClock().Now(),
                            args.dry_run);
  if (!outcome) return ReportError(kProgram, outcome.error());
  PrintInstalled(*outcome, args.dry_run, args.json);
  return kExitOk;
}

int RunInstallDev(const std::string& root, const std::string& name, bool dry_run, bool json) {
  constexpr const char* kProgram = "wharf-agent";
  if (auto valid = ValidatePackageName(name); !valid)
    return ReportError(kProgram, Prefix("--name", valid.error()).error(), kExitUsage);
  Layout layout(root);
  auto upload = ReceiveDevStream(STDIN_FILENO, layout, name);
  if (!upload) return ReportError(kProgram, upload.error());
  auto outcome = InstallDev(layout, name, *upload, SystemClock().Now(), dry_run);
  (void)RemoveTree(upload->archive_path);
  if (!outcome) return ReportError(kProgram, outcome.error());
  PrintInstalled(*outcome, dry_run, json);
  return kExitOk;
}

int RunDropDev(const std::string& root, const std::string& name, bool dry_run, bool json) {
  constexpr const char* kProgram = "wharf-agent";
  if (auto valid = ValidatePackageName(name); !valid) return ReportError(kProgram, valid.error(), kExitUsage);
  auto outcome = DropDev(Layout(root), name, dry_run);
  if (!outcome) return ReportError(kProgram, outcome.error());
  PrintDropped(*outcome, dry_run, json);
  return kExitOk;
}

}  // namespace wharf
