// The boot scripts of a generation (its "init" list): fetched by sha256, run after
// activation in name order with WHARF_FEC, WHARF_GENERATION, WHARF_ROOT and WHARF_STORE,
// each with a timeout (then its process group is killed), output appended to
// var/lib/wharf/init.log, results kept in var/lib/wharf/init-results.json.
#pragma once

#include <string>
#include <vector>

#include "agent/install.h"
#include "agent/layout.h"
#include "generation/generation.h"

namespace wharf {

struct InitResult {
  std::string name;
  int exit_code = -1;  // -1: killed or not run
  int signal = 0;
  bool timed_out = false;
  bool skipped = false;  // an earlier script failed and the generation says stop
  double seconds = 0;
  std::vector<std::string> last_lines;
  bool ok() const { return !skipped && !timed_out && signal == 0 && exit_code == 0; }
};

/// Runs the scripts of `generation`; an Error only when a script cannot be fetched or
/// checked (then none runs). Failures of scripts are in the results.
Result<std::vector<InitResult>> RunInitScripts(const Layout& layout, const Generation& generation,
                                               Mirrors& mirrors, const std::string& store_url);

/// The results of the last run, as JSON text ("" when none).
std::string ReadInitResults(const Layout& layout);

}  // namespace wharf
