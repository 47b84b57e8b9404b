// What the fuzz targets share: inputs in parts, a scratch folder per process, and a check
// that stops the run (a finding) when a property of the code under test does not hold.
//
// An input of several parts separates them with kSeparator, so the seeds stay readable
// text and the fuzzer's mutations keep the parts apart: "<package.json>\n@@@@\n<tar bytes>".
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "base/file.h"

namespace wharf::fuzz {

inline constexpr std::string_view kSeparator = "\n@@@@\n";

inline std::string_view Input(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// The parts of `input`, at most `most` (the last one keeps any further separators).
inline std::vector<std::string_view> Parts(std::string_view input, size_t most = 64) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < most) {
    size_t at = input.find(kSeparator);
    if (at == std::string_view::npos) break;
    parts.push_back(input.substr(0, at));
    input.remove_prefix(at + kSeparator.size());
  }
  parts.push_back(input);
  return parts;
}

/// A property of the code under test failed: libFuzzer keeps the input as a crash.
#define WHARF_FUZZ_CHECK(condition)                                                  \
  do {                                                                               \
    if (!(condition)) {                                                              \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

/// This process's scratch folder (in $TMPDIR, else /dev/shm when there is one: tmpfs keeps
/// the targets' fsyncs cheap), removed when the process exits normally.
inline const std::string& ScratchRoot() {
  static const std::string root = [] {
    std::string base = "/tmp";
    if (const char* tmp = std::getenv("TMPDIR"); tmp && *tmp) base = tmp;
    else if (::access("/dev/shm", W_OK) == 0) base = "/dev/shm";
    std::string pattern = base + "/wharf-fuzz-XXXXXX";
    if (!::mkdtemp(pattern.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    static std::string path;  // for the exit handler
    path = pattern;
    std::atexit([] { (void)RemoveTree(path); });
    return pattern;
  }();
  return root;
}

/// A fresh, empty folder below ScratchRoot() for one input; removed when it goes.
class ScratchFolder {
 public:
  ScratchFolder() : path_(JoinPath(ScratchRoot(), "run")) {
    (void)RemoveTree(path_);
    (void)MakeDirs(path_);
  }
  ~ScratchFolder() { (void)RemoveTree(path_); }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(std::string_view rel) const { return JoinPath(path_, rel); }

 private:
  std::string path_;
};

/// Writes `data` to `path` as it is (no fsync: a scratch file).
inline void WriteScratchFile(const std::string& path, std::string_view data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  WHARF_FUZZ_CHECK(fd.valid());
  WHARF_FUZZ_CHECK(WriteAll(fd.get(), data.data(), data.size(), path));
}

}  // namespace wharf::fuzz
