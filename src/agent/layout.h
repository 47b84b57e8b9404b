// Where the agent keeps things under its root (DESIGN, "The agent"):
//
//   var/lib/wharf/packages/<name>/<version>-<sha8>/        unpacked, read-only
//   var/lib/wharf/packages/<name>/<version>-<sha8>.package.json
//   var/lib/wharf/profiles/<n>/<name> -> ../../packages/<name>/<version>-<sha8>
//   var/lib/wharf/profiles/<n>/.generation.json (+ .sig)    the generation it realises
//   var/lib/wharf/current -> profiles/<n>                   switched by one rename
//   var/lib/wharf/state.json                                the accepted floor
//   var/lib/wharf/tmp/                                      downloads; emptied at start
//   <prefix> -> (relative) var/lib/wharf/current/<name>
//
// Every temporary name starts with "." (or lives in tmp/), so a crash leaves nothing that
// looks complete, and the next start removes it.
#pragma once

#include <string>

#include "base/file.h"
#include "generation/generation.h"

namespace wharf {

class Layout {
 public:
  explicit Layout(std::string root) : root_(AbsolutePath(root)), base_(JoinPath(root_, "var/lib/wharf")) {}

  const std::string& root() const { return root_; }
  const std::string& base() const { return base_; }
  std::string packages() const { return JoinPath(base_, "packages"); }
  std::string profiles() const { return JoinPath(base_, "profiles"); }
  std::string profile(uint64_t number) const { return JoinPath(profiles(), std::to_string(number)); }
  std::string current() const { return JoinPath(base_, "current"); }
  std::string state() const { return JoinPath(base_, "state.json"); }
  std::string tmp() const { return JoinPath(base_, "tmp"); }
  std::string lock() const { return JoinPath(base_, "lock"); }
  std::string config() const { return JoinPath(root_, "etc/wharf/agent.toml"); }

  /// "<version>-<first 8 hex of the archive sha256>": a republished version never collides.
  static std::string PackageLeaf(const PackageRef& ref) {
    return ref.version + "-" + ref.archive_sha256.substr(0, 8);
  }
  std::string package(const PackageRef& ref) const {
    return JoinPath(packages(), ref.name + "/" + PackageLeaf(ref));
  }
  std::string package_index(const PackageRef& ref) const { return package(ref) + ".package.json"; }
  /// Where the prefix link of `ref` lives under the root.
  std::string prefix_link(const PackageRef& ref) const { return JoinPath(root_, ref.prefix); }

 private:
  std::string root_;
  std::string base_;
};

}  // namespace wharf
