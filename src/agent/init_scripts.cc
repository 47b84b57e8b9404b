#include "agent/init_scripts.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/strings.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

std::string InitDir(const Layout& layout) { return JoinPath(layout.base(), "init"); }

// Runs one script; its output goes to `log` and the last lines into the result.
InitResult RunOne(const std::string& path, const InitScript& script, const std::vector<std::string>& env,
                  int log_fd) {
  InitResult result;
  result.name = script.name;
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return result;
  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(pipe_fds[1], 1);
    ::dup2(pipe_fds[1], 2);
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (const auto& kv : env) ::putenv(const_cast<char*>(kv.c_str()));
    ::execl(path.c_str(), path.c_str(), static_cast<char*>(nullptr));
    ::execl("/bin/sh", "sh", path.c_str(), static_cast<char*>(nullptr));  // no #! line
    _exit(127);
  }
  ::close(pipe_fds[1]);
  UniqueFd out(pipe_fds[0]);
  std::string tail;
  auto deadline = start + std::chrono::seconds(script.timeout);
  bool open = pid > 0;
  while (open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    pollfd fd{out.get(), POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000))) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(out.get(), buf, sizeof buf);
    if (n <= 0) break;
    (void)WriteAll(log_fd, buf, static_cast<size_t>(n), "init.log");
    tail.append(buf, static_cast<size_t>(n));
    if (tail.size() > 8192) tail.erase(0, tail.size() - 8192);
  }
  int status = 0;
  if (pid > 0) {
    if (result.timed_out) ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (auto& line : Split(tail, '\n'))
    if (!line.empty()) result.last_lines.push_back(line);
  if (result.last_lines.size() > 10) result.last_lines.erase(result.last_lines.begin(), result.last_lines.end() - 10);
  return result;
}

}  // namespace

namespace {

constexpr uint64_t kMaxInitBytes = 64u << 20;

bool HasBytes(const std::string& path, const InitScript& script) {
  auto body = ReadFile(path, kMaxInitBytes);
  return body && body->size() == script.size && Sha256Hex(*body) == script.sha256;
}

// The script's bytes from the stores, checked; the error says which store answered what.
Result<std::string> FetchScript(const InitScript& script, Mirrors& mirrors) {
  std::optional<Error> last;
  for (const auto& path : InitFetchPaths(script)) {
    std::string body;
    Status got = mirrors.Try(path, [&](const std::string& url) -> Status {
      auto fetched = mirrors.fetcher().Get(url, std::min<uint64_t>(kMaxInitBytes, script.size + 65536));
      if (!fetched) return std::unexpected(fetched.error());
      if (fetched->size() != script.size || Sha256Hex(*fetched) != script.sha256)
        return Fail(ErrorCode::kCorrupt, url + " has other bytes (sha256 " + Sha256Hex(*fetched).substr(0, 12) +
                                             "...) than the signed generation names (" + script.sha256.substr(0, 12) +
                                             "...): the store was altered");
      body = std::move(*fetched);
      return {};
    });
    if (got) return body;
    // The blob's absence sends an old generation to its named path; a wrong blob is final.
    if (!last || got.error().code != ErrorCode::kNotFound) last = got.error();
    if (got.error().code != ErrorCode::kNotFound) break;
  }
  return std::unexpected(*last);
}

}  // namespace

std::string ProfileInitDir(const std::string& profile) { return JoinPath(profile, ".init"); }

Status StageInitScripts(const std::string& dir, const Generation& generation, Mirrors& mirrors,
                        const std::vector<std::string>& reuse) {
  if (generation.init.empty()) return {};
  WHARF_TRY(MakeDirs(dir));
  for (const auto& script : generation.init) {
    std::string path = JoinPath(dir, script.sha256);
    if (HasBytes(path, script)) continue;
    std::optional<std::string> body;  // checked: a copy another profile holds, else the store's
    for (const auto& other : reuse)
      if (auto copy = ReadFile(JoinPath(other, script.sha256), kMaxInitBytes);
          copy && copy->size() == script.size && Sha256Hex(*copy) == script.sha256) {
        body = std::move(*copy);
        break;
      }
    if (!body) {
      auto fetched = FetchScript(script, mirrors);
      if (!fetched)
        return Prefix("boot script " + script.name + " (" + InitFetchPaths(script).front() + ")",
                      Error{fetched.error().code,
                            fetched.error().message + "; put those exact bytes back in the store (from a backup or "
                                                      "another store) or sign a new generation: wharf init add|link|remove"});
      body = std::move(*fetched);
    }
    WHARF_TRY(WriteFileAtomic(path, *body, 0755));
  }
  return SyncPath(dir);
}

Result<std::vector<InitResult>> RunInitScripts(const Layout& layout, const Generation& generation,
                                               Mirrors& mirrors, const std::string& store_url) {
  std::vector<InitResult> results;
  if (generation.init.empty()) return results;
  // Staged before the switch in the generation's profile (a dev profile runs generation n's).
  std::vector<std::string> dirs = {ProfileInitDir(layout.current()), ProfileInitDir(layout.profile(generation.number)),
                                   InitDir(layout)};
  std::vector<std::string> paths;
  for (const auto& script : generation.init) {
    auto found = std::find_if(dirs.begin(), dirs.end(),
                              [&](const std::string& d) { return HasBytes(JoinPath(d, script.sha256), script); });
    if (found == dirs.end()) break;
    paths.push_back(JoinPath(*found, script.sha256));
  }
  if (paths.size() != generation.init.size()) {
    // A profile an older agent wrote (or scripts changed on the FEC): fetched and checked now,
    // before any runs.
    paths.clear();
    auto staged = StageInitScripts(InitDir(layout), generation, mirrors, dirs);
    if (!staged) return Prefix(generation.fec, staged.error());
    for (const auto& script : generation.init) paths.push_back(JoinPath(InitDir(layout), script.sha256));
  }
  UniqueFd log(::open(JoinPath(layout.base(), "init.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  std::vector<std::string> env = {"WHARF_FEC=" + generation.fec, "WHARF_GENERATION=" + std::to_string(generation.number),
                                  "WHARF_ROOT=" + layout.root(), "WHARF_STORE=" + store_url};
  bool stop = false;
  for (size_t i = 0; i < generation.init.size(); ++i) {
    const InitScript& script = generation.init[i];
    if (stop) {
      InitResult skipped;
      skipped.name = script.name;
      skipped.skipped = true;
      results.push_back(skipped);
      continue;
    }
    std::string header = "== " + FormatTime(static_cast<int64_t>(::time(nullptr))) + " generation " +
                         std::to_string(generation.number) + ": " + script.name + "\n";
    if (log.valid()) (void)WriteAll(log.get(), header.data(), header.size(), "init.log");
    results.push_back(RunOne(paths[i], script, env, log.valid() ? log.get() : 2));
    if (!results.back().ok() && generation.init_stop_on_failure) stop = true;
  }
  nlohmann::ordered_json j{{"generation", generation.number}, {"scripts", nlohmann::ordered_json::array()}};
  for (const auto& r : results)
    j["scripts"].push_back({{"name", r.name}, {"exit_code", r.exit_code},
                            {"signal", r.signal ? nlohmann::ordered_json(std::string("SIG") + sigabbrev_np(r.signal))
                                                : nlohmann::ordered_json(nullptr)},
                            {"timed_out", r.timed_out}, {"skipped", r.skipped}, {"ok", r.ok()},
                            {"seconds", r.seconds}, {"last_lines", r.last_lines}});
  WHARF_TRY(WriteFileAtomic(JoinPath(layout.base(), "init-results.json"),
                            j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n", 0644));
  return results;
}

std::string ReadInitResults(const Layout& layout) {
  return ReadFile(JoinPath(layout.base(), "init-results.json"), 1 << 20).value_or("");
}

}  // namespace wharf
