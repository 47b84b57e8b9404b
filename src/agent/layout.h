// Where the agent keeps things under its root (DESIGN, "The agent"):
//
//   var/lib/wharf/packages/<name>/<version>-<sha8>/        unpacked, read-only
//   var/lib/wharf/packages/<name>/<version>-<sha8>.package.json
//   var/lib/wharf/profiles/<n>/<name> -> ../../packages/<name>/<version>-<sha8>
//   var/lib/wharf/profiles/<n>/.generation.json (+ .sig)    the generation it realises
//   var/lib/wharf/profiles/<n>/.init/<sha256>               its boot scripts, fetched and
//                                                           checked before the switch
//   var/lib/wharf/current -> profiles/<n>                   switched by one rename
//   var/lib/wharf/packages/<name>/dev-<sha8>/               a dev version (install-dev)
//   var/lib/wharf/profiles/<n>-dev-<k>/                     generation n's links with dev
//                                                           versions put in, its signed
//                                                           generation and .dev.json
//   var/lib/wharf/current -> profiles/<n>-dev-<k>           while dev versions are installed
//   var/lib/wharf/state.json                                the accepted floor
//   var/lib/wharf/tmp/                                      downloads; emptied at start
//   <prefix> -> (relative) var/lib/wharf/current/<name>
//
// Every temporary name starts with "." (or lives in tmp/), so a crash leaves nothing that
// looks complete, and the next start removes it.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

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
  std::string profile(std::string_view name) const { return JoinPath(profiles(), name); }
  /// The dev versions of the active profile (absent on a generation's own profile).
  std::string dev_list() const { return JoinPath(current(), ".dev.json"); }
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
  /// "<n>-dev-<k>": the k-th profile made of generation n with dev versions put in. Not
  /// hidden (it is a whole profile), not a number (it is no generation).
  static std::string DevProfileName(uint64_t generation, uint64_t k) {
    return std::to_string(generation) + "-dev-" + std::to_string(k);
  }
  /// The generation and k of a dev profile's name; nullopt for any other name.
  static std::optional<std::pair<uint64_t, uint64_t>> ParseDevProfileName(std::string_view name) {
    auto mark = name.find("-dev-");
    if (mark == std::string_view::npos) return std::nullopt;
    auto number = [](std::string_view digits) -> std::optional<uint64_t> {
      uint64_t value = 0;
      auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
      if (digits.empty() || error != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
      return value;
    };
    auto generation = number(name.substr(0, mark));
    auto k = number(name.substr(mark + 5));
    if (!generation || !k) return std::nullopt;
    return std::pair{*generation, *k};
  }

  /// Where the prefix link of `ref` lives under the root.
  std::string prefix_link(const PackageRef& ref) const { return JoinPath(root_, ref.prefix); }

 private:
  std::string root_;
  std::string base_;
};

}  // namespace wharf
