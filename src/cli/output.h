// One way to report from a command: "wharf: error: <message>" on stderr, and the exit code.
#pragma once

#include <cstdio>
#include <string>

#include "base/error.h"

namespace wharf {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

inline int ReportError(const char* program, const Error& error, int exit_code = 1) {
  std::fprintf(stderr, "%s: error: %s\n", program, error.message.c_str());
  return exit_code;
}

inline void Note(const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); }

}  // namespace wharf
