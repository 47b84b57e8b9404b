// Dev versions (issue 5): a package a developer installs straight on the FEC, never through
// the store, in place of the generation's version of it (or beside the generation's
// packages) until the next generation or `wharf-agent drop-dev`.
//
// A dev version is checked as a sync checks a package (every frame, entry and sha256) and
// unpacked read-only as packages/<name>/dev-<sha8>/; then a dev profile
// profiles/<n>-dev-<k>/ is made: generation n's links with the dev versions put in, n's
// signed generation (so that a sync of the same generation sees nothing new) and
// .dev.json, which lists the dev versions. `current` switches to it with one rename, and
// back to profiles/<n> when the last dev version is dropped. A new generation replaces the
// whole dev profile, and the garbage collection removes it and its packages.
//
// Nothing about a dev version is signed: whoever may run wharf-agent on the FEC may install
// one. The checks are for integrity (a cut or damaged upload), not for authenticity.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/layout.h"
#include "base/error.h"
#include "generation/generation.h"

namespace wharf {

struct DevPackage {
  std::string name;
  std::string sha256;        // of the archive
  uint64_t archive_size = 0;
  std::string prefix;
  int64_t installed = 0;     // seconds since the epoch
  std::optional<std::string> replaces;  // the generation's version it stands in for; none: added

  bool operator==(const DevPackage&) const = default;
};

/// A dev profile's .dev.json.
struct DevList {
  uint64_t generation = 0;           // the generation the profile is made of
  std::vector<DevPackage> packages;  // sorted by name

  const DevPackage* Find(std::string_view name) const;
};

std::string DevListToJson(const DevList& list);
/// Parses and checks names, prefixes and hashes (the list drives links and removals).
Result<DevList> ParseDevList(std::string_view json);
/// The dev list of the profile `current` points at: empty on a generation's own profile.
Result<DevList> ReadDevList(const Layout& layout);

/// The package a dev version is unpacked as: version "dev", so packages/<name>/dev-<sha8>.
PackageRef DevRef(const DevPackage& package);
/// The packages a profile links: the generation's, with the dev versions put in by name.
std::vector<PackageRef> ProfilePackages(const Generation& generation, const DevList& dev);

/// The dev list with `package` put in (in place of an earlier dev version of that name);
/// sets package.replaces. Refuses, for a package the generation assigns, another prefix
/// than the generation's, and any prefix that overlaps another package's.
Result<DevList> PlanDevInstall(const Generation& generation, const DevList& current, DevPackage package);
/// The dev list less `name`; refuses a name that is not a dev version.
Result<DevList> PlanDevDrop(const Generation& generation, const DevList& current, const std::string& name);

/// What install-dev takes: a package.json and the archive it describes.
struct DevUpload {
  std::string index_json;
  std::string archive_path;
};

struct DevOutcome {
  std::string fec;       // the active generation's FEC
  uint64_t generation = 0;
  DevPackage package;    // installed, or dropped
  std::string profile;   // what `current` points at now (or would, on a dry run)
  bool unpacked = false; // install: false when the same bytes were already there
  size_t entries = 0;    // install: entries of the archive
};

/// install-dev: checks the upload (package.json for `name`, version "dev"; every frame,
/// entry and sha256 of the archive), unpacks it, makes the dev profile and switches to
/// it. Needs an active generation. With `dry_run`, checks everything and changes nothing.
/// Takes the agent's lock; a kill at any point leaves the old or the new state whole.
Result<DevOutcome> InstallDev(const Layout& layout, const std::string& name, const DevUpload& upload,
                              int64_t now, bool dry_run);
/// drop-dev: back to the generation's version of `name`, or without it when the
/// generation does not assign it; back to profiles/<n> when no dev version remains.
Result<DevOutcome> DropDev(const Layout& layout, const std::string& name, bool dry_run);

// The stream `wharf dev-deploy` sends to `wharf-agent install-dev` (docs/formats.md): one
// line "wharf-dev 1 <index bytes> <archive bytes>\n", then package.json, then the archive.
inline constexpr int kDevStreamFormat = 1;
inline constexpr uint64_t kMaxDevIndexBytes = 64ull << 20;
inline constexpr uint64_t kMaxDevArchiveBytes = 64ull << 30;

std::string DevStreamHeader(uint64_t index_bytes, uint64_t archive_bytes);
/// Reads a whole stream from `fd` (to its end: nothing may follow the archive), the
/// archive into a temporary under layout.tmp() that the caller removes. Refuses a FEC
/// without an active generation before reading anything.
Result<DevUpload> ReceiveDevStream(int fd, const Layout& layout, const std::string& name);

/// For `wharf-agent status`: one loud line per dev version ("DEV  app  replaces 1.2 ..."),
/// none when there is none.
std::vector<std::string> DevStatusLines(const Layout& layout);
/// The same as a JSON array: [{"name", "version": "dev", "sha256", "size", "prefix",
/// "installed", "replaces", "generation"}]; [] when there is none.
std::string DevStatusJson(const Layout& layout);

}  // namespace wharf
