// Drift: installed package folders compared with their signed package.json, and repaired.
//
// A package folder (layout.package(ref)) must hold exactly the entries of its index: each
// file with its sha256 and size, each folder and file with its installed mode (the index's
// less write bits; folders keep u+rx), each link with its target, and nothing else. The
// index beside it must be the one the generation pins (size and sha256).
//
// Two checks: the full one re-hashes every byte (`wharf-agent verify`); the cheap one a sync
// can afford compares a stamp of the tree's metadata (lstat of every entry: type, mode,
// size, mtime, inode, and the names in each folder) recorded when the folder was installed
// or last verified clean. A write, chmod, replaced, added or removed entry changes it; a
// stamp that differs leads to the full check of that package only. ctime is left out: the
// agent's own hard links (a new version sharing a file, a staging folder removed, an old
// version collected) change it on files nobody touched, which would make every kept
// package look changed and lend nothing. A change that sets mtime back on purpose is found
// by the full check, which `run` does in the background.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/install.h"
#include "agent/layout.h"
#include "archive/package_index.h"
#include "base/error.h"
#include "generation/generation.h"

namespace wharf {

enum class DriftKind {
  kIndex,    // package.json beside the folder is missing or not the pinned one
  kMissing,  // an entry of the index is not there
  kExtra,    // an entry that the index does not have
  kType,     // a file where a folder should be, a folder replaced by a link, ...
  kSize,     // a file of another size
  kContent,  // a file whose sha256 differs
  kMode,     // other permission bits
  kLink,     // a link with another target
};
const char* DriftKindName(DriftKind kind);

struct Drift {
  std::string package;  // name@version
  std::string path;     // where on the FEC, under the prefix: "/opt/demo/bin/ioc"
  std::string rel;      // inside the package folder ("" is the folder itself)
  DriftKind kind = DriftKind::kContent;
  std::string want, have;  // what the index says and what is there, in words
};

/// One entry of an installed folder, as found.
struct Observed {
  enum class Type { kFile, kDirectory, kSymlink, kOther } type = Type::kFile;
  uint32_t mode = 0;   // permission bits
  uint64_t size = 0;
  std::string sha256;  // files, when hashed
  std::string link;    // symlinks
};
/// By path inside the package folder ("" for the folder itself).
using ObservedTree = std::map<std::string, Observed>;

/// The mode an installed entry of the index has: the index's less write bits; folders keep
/// u+rx so that the agent can walk them.
uint32_t InstalledMode(const FileEntry& entry);

/// Pure: every difference between the index and what was found, in path order.
/// `hashed`: the tree's files carry their sha256 (else content is not compared).
std::vector<Drift> CompareTree(const PackageRef& ref, const PackageIndex& index, const ObservedTree& tree,
                               bool hashed = true);

/// Limits the full check's reading rate (for a daemon's background verify); 0: no limit.
struct VerifyBudget {
  uint64_t bytes_per_second = 0;
  /// Asked between reads (may be empty): true stops the check with kTimedOut (a daemon
  /// shutting down).
  std::function<bool()> stop;
};

/// Walks a package folder without following links; hashes files when `hash`, at most at
/// the budget's rate. `bytes` (may be null) grows by what was read.
Result<ObservedTree> ScanTree(const std::string& folder, bool hash, const VerifyBudget& budget = {},
                              uint64_t* bytes = nullptr);

/// The checked package.json beside an installed package: size and sha256 as `ref` pins them.
Result<PackageIndex> ReadInstalledIndex(const Layout& layout, const PackageRef& ref);

struct PackageDrift {
  PackageRef ref;
  std::vector<Drift> drifts;
};

struct DriftReport {
  uint64_t generation = 0;
  size_t packages = 0;
  size_t entries = 0;       // entries compared
  uint64_t bytes = 0;       // bytes read and hashed
  std::vector<Drift> drifts;  // every package's, in generation order
};

/// The full check of one package: its index, then every entry and byte of its folder.
Result<std::vector<Drift>> VerifyPackage(const Layout& layout, const PackageRef& ref, const VerifyBudget& budget = {},
                                         uint64_t* bytes = nullptr, size_t* entries = nullptr);
/// The full check of every package of `generation` (the active one): what a daemon's worker
/// may call, at the budget's rate. Dev versions put in place of a package are not checked
/// (nothing signed describes them); the generation's own version is.
Result<DriftReport> VerifyInstalled(const Layout& layout, const Generation& generation,
                                    const VerifyBudget& budget = {});

/// One line for a heartbeat or `wharf status`: "" when clean, else "drift: N differences in
/// name@version[, ...]; first: PATH: KIND (run `wharf-agent verify`)".
std::string DriftSummary(const std::vector<Drift>& drifts);

struct RepairStats {
  size_t files = 0;     // files written again from the store's frames
  size_t removed = 0;   // extra entries removed
  size_t links = 0;     // links made again
  size_t folders = 0;   // folders made again
  size_t modes = 0;     // modes set again
  uint64_t bytes_fetched = 0;
  bool reinstalled = false;  // the folder or its index was gone: installed whole
};

/// Makes the folder of `ref` exactly its index again, given the drift VerifyPackage found:
/// fetches only the frames of the damaged files (Range requests through `mirrors`), writes
/// each beside its place and renames it over, removes extra entries, makes links and
/// folders, sets modes, and leaves folders read-only as installed. Records a new stamp.
/// REQUIRES: the agent's lock held.
Result<RepairStats> RepairPackage(const Layout& layout, Mirrors& mirrors, const PackageRef& ref,
                                  const std::vector<Drift>& drifts);

/// The stamp of a tree's metadata (see above): a sha256 over every entry's lstat.
Result<std::string> TreeStamp(const std::string& folder);
/// Where the stamp of an installed package is kept: beside its index.
std::string StampPath(const Layout& layout, const PackageRef& ref);
/// Records the stamp of `ref`'s folder as it is now (after an install or a clean check).
Status WriteStamp(const Layout& layout, const PackageRef& ref);
/// The cheap check: the folder's stamp is the recorded one (false when none was recorded).
bool StampMatches(const Layout& layout, const PackageRef& ref);

}  // namespace wharf
