// The boot scripts of a generation (its "init" list): fetched by content before the switch
// into the new profile's .init/<sha256> (a generation whose scripts cannot be fetched or
// checked is not activated; a boot with no store runs them from there), run after
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

/// Where a profile keeps its generation's boot scripts: <profile>/.init/<sha256>.
std::string ProfileInitDir(const std::string& profile);

/// Puts each script of `generation` into `dir`/<sha256>, checked against its size and sha256:
/// a copy in one of `reuse` (other profiles' script folders) with the right bytes, else
/// fetched from the stores (the blob of its sha256, then an old generation's named path).
/// An Error naming the script, the store's answer and what to do when one cannot be had.
Status StageInitScripts(const std::string& dir, const Generation& generation, Mirrors& mirrors,
                        const std::vector<std::string>& reuse);

/// Runs the scripts of `generation`, staged in its profile (a profile staged by an older
/// agent: fetched now into var/lib/wharf/init/); an Error only when a script cannot be fetched or
/// checked (then none runs). Failures of scripts are in the results.
Result<std::vector<InitResult>> RunInitScripts(const Layout& layout, const Generation& generation,
                                               Mirrors& mirrors, const std::string& store_url);

/// The results of the last run, as JSON text ("" when none).
std::string ReadInitResults(const Layout& layout);

}  // namespace wharf
