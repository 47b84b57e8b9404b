// wharf-procserv: one service's process server (service/procserv.h), a program of its own
// so that each of the dozens on a FEC costs little memory: it links the process server,
// the trusted-folder checks and base, and nothing else (tests/e2e/procserv_small.sh checks
// its libraries). Only parses arguments (service/procserv_args.h).
#include <malloc.h>

#include <cstdio>
#include <string>
#include <vector>

#include "service/procserv.h"
#include "service/procserv_args.h"

int main(int argc, char** argv) {
  // Large blocks (the replay ring, the queue of a console client that lags) are mapped on
  // their own and go back to the system when freed, and the heap's free top is returned
  // early: a burst of output does not leave a process server bigger for good.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024);
  mallopt(M_TRIM_THRESHOLD, 64 * 1024);
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = wharf::ParseProcServArguments(args);
  if (!parsed) {
    std::fprintf(stderr, "wharf-procserv: error: %s\n", parsed.error().message.c_str());
    return parsed.error().code == wharf::ErrorCode::kInvalidArgument ? 2 : 1;
  }
  if (parsed->help) {
    std::fputs(wharf::ProcServUsage(), stdout);
    return 0;
  }
  return wharf::RunProcServ(parsed->options, parsed->fingerprint);
}
