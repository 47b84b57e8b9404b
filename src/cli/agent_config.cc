#include "cli/agent_config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <string_view>
#include <utility>

#include "base/file.h"
#include "base/strings.h"

namespace wharf {
namespace {

// agent.toml holds FEC paths: under --root they are read from the root's folder.
std::string UnderRoot(const std::string& root, const std::string& path) {
  return path.starts_with("/") ? JoinPath(root, path) : path;
}

}  // namespace

void AddUrls(std::vector<std::string>& out, const std::string& text) {
  for (auto& url : Split(text, ','))
    if (!url.empty()) out.push_back(url);
}

// Every setting agent.toml may hold, and its type: a mistyped name or a value of the wrong
// type would otherwise be ignored without a word, and the FEC would run on a default.
enum class Setting { kString, kStrings, kInteger, kBoolean };
constexpr std::pair<std::string_view, Setting> kSettings[] = {
    {"fec", Setting::kString},           {"store", Setting::kStrings},
    {"trust", Setting::kStrings},        {"keep", Setting::kInteger},
    {"server", Setting::kString},        {"supervisor", Setting::kString},
    {"agent_health_deadline", Setting::kInteger}, {"stop_services", Setting::kBoolean},
    {"console_group", Setting::kString}, {"keep_snapshots", Setting::kInteger},
    {"transfer_base_seconds", Setting::kInteger}, {"transfer_floor_rate", Setting::kInteger},
    {"token_file", Setting::kString},
};

static bool HasType(const toml::node& node, Setting type) {
  switch (type) {
    case Setting::kString: return node.is_string();
    case Setting::kInteger: return node.is_integer();
    case Setting::kBoolean: return node.is_boolean();
    case Setting::kStrings:
      if (node.is_string()) return true;
      if (auto* list = node.as_array())
        return std::all_of(list->begin(), list->end(), [](const toml::node& item) { return item.is_string(); });
      return false;
  }
  return false;
}

static Status CheckSettings(const toml::table& table, const std::string& path) {
  static constexpr const char* kTypeNames[] = {"a string", "a string or a list of strings", "an integer",
                                               "true or false"};
  for (const auto& [key, node] : table) {
    auto known = std::find_if(std::begin(kSettings), std::end(kSettings),
                              [&](const auto& setting) { return setting.first == key.str(); });
    if (known == std::end(kSettings)) {
      std::string names;
      for (const auto& setting : kSettings) names += (names.empty() ? "" : ", ") + std::string(setting.first);
      return Fail(ErrorCode::kInvalidArgument, path + ":" + std::to_string(node.source().begin.line) +
                                                   ": unknown setting '" + std::string(key.str()) +
                                                   "'; fix the file (settings: " + names + ")");
    }
    if (!HasType(node, known->second))
      return Fail(ErrorCode::kInvalidArgument,
                  path + ":" + std::to_string(node.source().begin.line) + ": " + std::string(key.str()) +
                      " must be " + kTypeNames[static_cast<int>(known->second)] + "; fix the file");
  }
  return {};
}

Status ReadConfigFile(const std::string& path, const std::string& root, AgentArgs& args) {
  auto text = ReadTomlText(path);
  if (!text) return std::unexpected(text.error());
  toml::table table;
  try {
    table = toml::parse(*text, path);
  } catch (const toml::parse_error& e) {
    return Fail(ErrorCode::kInvalidArgument,
                path + ":" + std::to_string(e.source().begin.line) + ": " +
                    std::string(e.description()) + "; fix the file");
  }
  WHARF_TRY(CheckSettings(table, path));
  if (args.stores.empty()) {
    if (auto* list = table["store"].as_array()) {
      for (auto& item : *list)
        if (auto url = item.value<std::string>()) AddUrls(args.stores, *url);
    } else if (auto url = table["store"].value<std::string>()) {
      AddUrls(args.stores, *url);
    }
  }
  if (args.fec.empty()) args.fec = table["fec"].value_or(std::string());
  if (args.trust.empty()) {
    if (auto* list = table["trust"].as_array())
      for (auto& item : *list)
        if (auto key = item.value<std::string>()) args.trust.push_back(UnderRoot(root, *key));
  }
  if (args.keep == 0) args.keep = static_cast<int>(table["keep"].value_or(int64_t{0}));
  if (args.server.empty()) args.server = table["server"].value_or(std::string());
  if (args.supervisor.empty()) args.supervisor = table["supervisor"].value_or(std::string());
  if (args.health_deadline_seconds == 0)
    args.health_deadline_seconds = static_cast<int>(table["agent_health_deadline"].value_or(int64_t{0}));
  if (!args.stop_services) args.stop_services = table["stop_services"].value_or(false);
  if (args.console_group.empty()) args.console_group = table["console_group"].value_or(std::string());
  if (args.keep_snapshots == 0) args.keep_snapshots = static_cast<int>(table["keep_snapshots"].value_or(int64_t{0}));
  if (args.transfer_base_seconds < 0) {
    int64_t base = table["transfer_base_seconds"].value_or(int64_t{-1});
    if (base < -1 || base > 86400)
      return Fail(ErrorCode::kInvalidArgument, path + ": transfer_base_seconds = " + std::to_string(base) +
                                                   ": expected 0..86400 seconds");
    args.transfer_base_seconds = static_cast<long>(base);
  }
  if (args.transfer_floor_rate < 0) {
    int64_t rate = table["transfer_floor_rate"].value_or(int64_t{-1});
    if (rate < -1)
      return Fail(ErrorCode::kInvalidArgument, path + ": transfer_floor_rate = " + std::to_string(rate) +
                                                   ": expected bytes per second (0: no deadline)");
    args.transfer_floor_rate = rate;
  }
  if (args.token.empty() && args.token_file.empty())
    args.token_file = UnderRoot(root, table["token_file"].value_or(std::string()));
  return {};
}

}  // namespace wharf
