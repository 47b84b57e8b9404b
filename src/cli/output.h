// One way to report from a command: "wharf: error: <message>" on stderr, and the exit code.
#pragma once

#include <cstdio>
#include <string>
#include <tuple>
#include <type_traits>

#include "base/error.h"
#include "base/strings.h"

namespace wharf {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Messages carry text from FECs, stores and users: printed with its control characters
// escaped (base/strings.h); lines they were built with stay lines.
inline int ReportError(const char* program, const Error& error, int exit_code = 1) {
  std::fprintf(stderr, "%s: error: %s\n", program, EscapeForTerminal(error.message, true).c_str());
  return exit_code;
}

inline void Note(const std::string& line) { std::fprintf(stderr, "%s\n", EscapeForTerminal(line, true).c_str()); }

namespace output_detail {
inline std::string Escaped(const char* text) { return EscapeForTerminal(text ? text : ""); }
inline std::string Escaped(const std::string& text) { return EscapeForTerminal(text); }
template <typename T>
  requires std::is_arithmetic_v<T>
T Escaped(T value) { return value; }
inline const char* Passed(const std::string& text) { return text.c_str(); }
template <typename T>
T Passed(T value) { return value; }
}  // namespace output_detail

/// printf for human-readable output: every string argument is printed with its control
/// characters (newlines too) escaped, so that nothing a FEC, a store or a user wrote can
/// move the cursor, retitle the window or forge a line. The format is wharf's own.
/// JSON output goes through std::printf unchanged.
template <typename... Args>
void PrintHuman(std::FILE* out, const char* format, const Args&... args) {
  std::tuple<decltype(output_detail::Escaped(args))...> escaped{output_detail::Escaped(args)...};
  std::apply(
      [&](const auto&... a) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"
        std::fprintf(out, format, output_detail::Passed(a)...);
#pragma GCC diagnostic pop
      },
      escaped);
}

}  // namespace wharf
