// The store: a folder of static files that any web server can serve (DESIGN, "The store").
//
//   software/<name>/<version>/<name>-<version>.tar.zst, package.json   immutable once there
//   configuration/<name>/<version>/...           configuration packages, same shape
//   fecs/<FEC>/configuration/<name>/<version>/   one FEC's own configuration packages
//   fecs/<FEC>/generation.json (+ .sig)          the FEC's signed desired state
//   fecs/<FEC>/generations/<n>.json (+ .sig)     every generation, never rewritten
//   fecs/<FEC>/software/<name>.tar.zst ->        the human view, derived from the generation
//   .wharf/lock                                  the store lock (never served)
//
// Every write goes to a temp name, is fsynced and renamed into place under the lock.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "archive/package_index.h"
#include "base/error.h"
#include "base/file.h"
#include "crypto/sign.h"
#include "generation/generation.h"

namespace wharf {

struct StoredGeneration {
  Generation generation;
  std::string json;  // its exact bytes, which the signature covers
};

/// Where the versions of one package live: `area` is "software", "configuration" or
/// "fecs/<FEC>/configuration". A name is one package across software and shared
/// configuration; FECs' own configurations may reuse a name among themselves, not those.
struct PackageHome {
  std::string area;
  std::string name;
  std::string folder() const { return area + "/" + name; }
  bool configuration() const { return area != "software"; }
};

struct PublishOutcome {
  PackageIndex index;
  bool already_present = false;  // the same bytes were there: nothing was written
};

class Store {
 public:
  /// Opens the store at `root`; with `create`, makes the folder and its layout first.
  static Result<Store> Open(const std::string& root, bool create);

  const std::string& root() const { return root_; }
  /// Holds the store lock; every change happens under it.
  Result<FileLock> Lock() const;

  /// Checks the archive against its package.json (every frame and file) and makes the
  /// version visible under software/<name>/<version>/ in one rename. The same bytes again
  /// are a no-op; other bytes for a published version are refused (kAlreadyExists).
  /// Beside the archive it writes zstd patches of changed big files against the newest
  /// `delta_bases` earlier versions (deltas.json), for agents that hold those.
  Result<PublishOutcome> Publish(const std::string& archive_path, const std::string& index_path,
                                 bool dry_run, int delta_bases = 2);

  /// The reference a generation of `fec` records for a published version (software, shared
  /// configuration or that FEC's own).
  Result<PackageRef> ResolvePackage(const std::string& fec, const std::string& name,
                                    const std::string& version) const;
  Result<PackageIndex> ReadIndex(const PackageHome& home, const std::string& version) const;
  /// The package `name` as FEC `fec` sees it; kNotFound when nothing of that name is published.
  Result<PackageHome> FindPackage(const std::string& fec, const std::string& name) const;
  /// Every package of every kind, software first.
  Result<std::vector<PackageHome>> Packages() const;
  /// The published versions of a package, sorted.
  Result<std::vector<std::string>> Versions(const PackageHome& home) const;

  /// The FEC's current generation, or nothing when it has none yet.
  Result<std::optional<StoredGeneration>> CurrentGeneration(const std::string& fec) const;
  /// Every generation of a FEC, ascending.
  Result<std::vector<Generation>> History(const std::string& fec) const;
  /// FECs that have a folder in the store, sorted.
  Result<std::vector<std::string>> Fecs() const;

  /// Signs and writes `generation` (whose bytes are `json`) as the FEC's current one,
  /// keeping it under generations/, then re-derives the FEC's human view.
  /// REQUIRES: the store lock is held.
  Status WriteGeneration(const Generation& generation, const std::string& json,
                         const PrivateKey& key);

 private:
  explicit Store(std::string root) : root_(std::move(root)) {}
  std::string FecDir(const std::string& fec) const;
  /// The newest `count` published versions of `name` other than `except`, newest first,
  /// with their archives' paths.
  std::vector<std::pair<std::string, PackageIndex>> RecentVersions(const PackageHome& home,
                                                                   const std::string& except,
                                                                   int count) const;
  /// True when the package's folder holds a published version.
  bool HasVersions(const PackageHome& home) const;
  /// Refuses a name that another kind of package already uses (see PackageHome).
  /// Publish checks it before the copy (to fail fast) and again under the lock.
  Status CheckNameFree(const PackageIndex& index) const;
  Status DeriveView(const Generation& generation);
  Result<PublishOutcome> CompareWithPublished(const std::string& dest, const PackageIndex& index,
                                              const std::string& index_json);

  std::string root_;
};

}  // namespace wharf
