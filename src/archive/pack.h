// Packs a folder into a wharf archive and its package.json.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "archive/package_index.h"
#include "base/error.h"

namespace wharf {

/// Every frame is compressed with a 4 MiB window (zstd picks 8 MiB at level 19), so two
/// decoders fit an agent's memory bound at once (docs/formats.md: what it costs).
inline constexpr int kPackWindowLog = 22;

struct PackOptions {
  std::string name;
  std::string version;
  std::string prefix;              // where the folder's contents install: "/opt/demo"
  std::string out_dir = ".";       // writes <name>-<version>.tar.zst and .package.json here
  // The defaults trade publish time for bytes on every FEC's link: within 5% of a whole
  // `tar | zstd -19` on the bench tree (bench/README.md), in about the same pack time.
  int level = 19;                  // zstd level of every frame
  uint64_t frame_size = 10u << 20;  // target raw size of a frame; big files split at this
  bool keep_owners = false;        // else uid/gid 0, no names
  bool keep_mtimes = false;        // else mtime 0
  unsigned threads = 0;            // compression threads; 0: one per core
  std::string services;            // JSON array of service definitions, already checked
  bool configuration = false;      // a configuration package (package_index.h); `fec` and
  std::string fec;                 // `matches` need it: configuration of this FEC only,
  std::vector<PackageMatch> matches;  // and the software versions it is made for
  /// Called now and then with (raw bytes done, raw bytes total); may be empty.
  std::function<void(uint64_t, uint64_t)> progress;
};

struct PackResult {
  std::string archive_path;
  std::string index_path;
  PackageIndex index;
};

/// Walks `dir` (sorted, not following symlinks; regular files, folders and symlinks; hard
/// links are stored as separate files; anything else is refused by name), writes the
/// archive as independent frames and the index, both under temp names renamed into place.
/// The same tree and options give byte-identical output.
Result<PackResult> PackTree(const std::string& dir, const PackOptions& options);

}  // namespace wharf
