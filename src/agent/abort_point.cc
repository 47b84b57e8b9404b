#include "agent/abort_point.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace wharf {

void AbortPoint(std::string_view name) {
  static const char* abort_at = std::getenv("WHARF_TEST_ABORT_AT");
  static const bool trace = std::getenv("WHARF_TEST_TRACE_POINTS") != nullptr;
  if (trace) std::fprintf(stderr, "abort-point: %.*s\n", int(name.size()), name.data());
  if (abort_at != nullptr && name == abort_at) {
    std::fflush(nullptr);
    std::raise(SIGKILL);
  }
}

}  // namespace wharf
