// counterd: a toy device server for wharf's packaging example. It prints a counter that
// goes up once per interval and keeps it in a state file, so a restart, a reboot or an
// upgrade to a new version carries on where the last run stopped.
//
//   counterd [--state FILE] [--count N | --once] [--interval-ms MS] [--config FILE]
//
// The state file is --state, else $COUNTER_STATE, else `state` in the config file, else
// /var/lib/counter/count. The config file (default: ../etc/counter.conf beside the binary,
// so it follows the package wherever it is installed) holds `key = value` lines.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

namespace {

namespace fs = std::filesystem;

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

struct Settings {
  std::string state = "/var/lib/counter/count";
  long interval_ms = 1000;
  long count = -1;  // -1: until SIGTERM or SIGINT
};

// Errors are returned as text naming the file; main prints it and exits 1.
using Error = std::optional<std::string>;

Error ParseNumber(const std::string& text, const std::string& what, long& out) {
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || value < 0)
    return what + ": \"" + text + "\" is not a whole number >= 0";
  out = value;
  return std::nullopt;
}

std::string DefaultConfigPath() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  return (exe.parent_path().parent_path() / "etc" / "counter.conf").string();
}

Error ReadConfig(const std::string& path, bool required, Settings& settings) {
  std::error_code ec;
  if (!required && !fs::exists(path, ec)) return std::nullopt;
  std::ifstream in(path);
  if (!in) return path + ": cannot open (" + std::strerror(errno) + ")";
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#') continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) return path + ":" + std::to_string(number) + ": expected key = value";
    auto trim = [](std::string s) {
      s.erase(0, s.find_first_not_of(" \t"));
      s.erase(s.find_last_not_of(" \t") + 1);
      return s;
    };
    std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    std::string where = path + ":" + std::to_string(number);
    if (key == "state") settings.state = value;
    else if (key == "interval_ms") {
      if (Error e = ParseNumber(value, where, settings.interval_ms)) return e;
    } else return where + ": unknown key \"" + key + "\" (known: state, interval_ms)";
  }
  return std::nullopt;
}

// A missing file starts the count at 0; anything unreadable is an error rather than a
// silent restart from 0.
Error LoadCounter(const std::string& path, long& value) {
  std::error_code ec;
  if (!fs::exists(path, ec) && !ec) {
    value = 0;
    return std::nullopt;
  }
  std::ifstream in(path);
  if (!in) return path + ": cannot read the counter (" + std::strerror(errno) + ")";
  std::string text;
  std::getline(in, text);
  return ParseNumber(text, path, value);
}

// Temp file, fsync, rename, fsync of the folder: after a crash the file holds either the
// old value or the new one, never a torn write.
Error StoreCounter(const std::string& path, long value) {
  fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return tmp + ": cannot create (" + std::strerror(errno) + "); pass --state FILE";
  std::string text = std::to_string(value) + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (!ok) return tmp + ": cannot write (" + std::strerror(saved) + ")";
  if (::rename(tmp.c_str(), path.c_str()) != 0) return path + ": cannot replace (" + std::strerror(errno) + ")";
  std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return std::nullopt;
}

Error ParseArgs(int argc, char** argv, Settings& settings) {
  std::string config = DefaultConfigPath();
  bool config_required = false;
  std::optional<std::string> state, interval, count;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 < argc) return std::string(argv[++i]);
      return std::nullopt;
    };
    std::optional<std::string>* slot = nullptr;
    if (arg == "--once") count = "1";
    else if (arg == "--state") slot = &state;
    else if (arg == "--count") slot = &count;
    else if (arg == "--interval-ms") slot = &interval;
    else if (arg == "--config") {
      auto v = value();
      if (!v) return "--config needs a value";
      config = *v;
      config_required = true;
    } else return "unknown option \"" + arg + "\"; usage: counterd [--state FILE] [--count N | --once] "
                  "[--interval-ms MS] [--config FILE]";
    if (slot && !(*slot = value())) return arg + " needs a value";
  }
  // The config file first, so that the environment and the flags override it.
  if (!config.empty())
    if (Error e = ReadConfig(config, config_required, settings)) return e;
  if (const char* env = std::getenv("COUNTER_STATE"); env && *env) settings.state = env;
  if (state) settings.state = *state;
  if (interval)
    if (Error e = ParseNumber(*interval, "--interval-ms", settings.interval_ms)) return e;
  if (count)
    if (Error e = ParseNumber(*count, "--count", settings.count)) return e;
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  long value = 0;
  Error error = ParseArgs(argc, argv, settings);
  if (!error) error = LoadCounter(settings.state, value);
  if (error) {
    std::fprintf(stderr, "counterd: error: %s\n", error->c_str());
    return 1;
  }
  ::signal(SIGTERM, OnSignal);
  ::signal(SIGINT, OnSignal);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  for (long done = 0; !g_stop && (settings.count < 0 || done < settings.count); ++done) {
    if (done > 0) std::this_thread::sleep_for(std::chrono::milliseconds(settings.interval_ms));
    if (g_stop) break;
    // Stored before it is printed: a value anyone saw is never counted again.
    if (Error e = StoreCounter(settings.state, value + 1)) {
      std::fprintf(stderr, "counterd: error: %s\n", e->c_str());
      return 1;
    }
    std::printf("counter %ld\n", ++value);
  }
  return 0;
}
