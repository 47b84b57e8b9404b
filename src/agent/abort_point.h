// Test-only crash points. With WHARF_TEST_ABORT_AT=<name> in the environment the agent
// kills itself with SIGKILL when it reaches the point of that name, as a power cut would;
// with WHARF_TEST_TRACE_POINTS=1 it prints "abort-point: <name>" to stderr at each one, so
// that a test can list every point of a sync and then cut at each in turn. Without those
// variables a point costs one comparison.
#pragma once

#include <string_view>

namespace wharf {

void AbortPoint(std::string_view name);

}  // namespace wharf
