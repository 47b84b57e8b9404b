#include "service/definition.h"

#include <signal.h>
#include <string.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "archive/names.h"
#include "base/file.h"
#include "base/strings.h"

namespace wharf {
namespace {

using nlohmann::ordered_json;

std::unexpected<Error> Bad(const std::string& service, const std::string& what) {
  return std::unexpected(Error{ErrorCode::kInvalidArgument, "service " + service + ": " + what});
}

bool SafeRelative(std::string_view path) {
  if (path.empty() || path.front() == '/') return path.empty() || path.front() == '/';
  for (const auto& part : Split(path, '/'))
    if (part == "..") return false;
  return true;
}

ordered_json ToJson(const ServiceDef& s) {
  ordered_json j{{"name", s.name}, {"command", s.command}, {"args", s.args}};
  if (!s.env.empty()) j["env"] = s.env;
  if (!s.workdir.empty()) j["workdir"] = s.workdir;
  if (!s.user.empty()) j["user"] = s.user;
  if (!s.group.empty()) j["group"] = s.group;
  j["restart"] = s.restart;
  j["holdoff"] = s.holdoff;
  j["stop_signal"] = s.stop_signal;
  j["grace"] = s.grace;
  j["level"] = s.level;
  j["dev"] = s.dev;
  // Only when given: the JSON (and so the fingerprint) of a definition without it stays
  // what it was before the field existed.
  if (s.configuration) j["configuration"] = *s.configuration;
  return j;
}

// Sets one field from JSON (a definition or an override); unknown keys are refused.
Status SetField(ServiceDef& s, const std::string& key, const ordered_json& v) {
  try {
    if (key == "name") s.name = v.get<std::string>();
    else if (key == "command") s.command = v.get<std::string>();
    else if (key == "args") s.args = v.get<std::vector<std::string>>();
    else if (key == "env") s.env = v.get<std::map<std::string, std::string>>();
    else if (key == "workdir") s.workdir = v.get<std::string>();
    else if (key == "user") s.user = v.get<std::string>();
    else if (key == "group") s.group = v.get<std::string>();
    else if (key == "restart") s.restart = v.get<std::string>();
    else if (key == "holdoff") s.holdoff = v.get<int>();
    else if (key == "stop_signal") s.stop_signal = v.get<std::string>();
    else if (key == "grace") s.grace = v.get<int>();
    else if (key == "level") s.level = v.get<int>();
    else if (key == "dev") s.dev = v.get<bool>();
    else if (key == "configuration") s.configuration = v.get<std::vector<std::string>>();
    else return Bad(s.name, "unknown field \"" + key + "\"");
  } catch (const nlohmann::json::exception&) {
    return Bad(s.name, "field \"" + key + "\" has the wrong type");
  }
  return {};
}

std::vector<std::string> SplitWords(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (char c : text) {
    if (quote) {
      if (c == quote) quote = 0;
      else word += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == ' ' || c == '\t') {
      if (in_word) words.push_back(word);
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(word);
  return words;
}

}  // namespace

int SignalNumber(std::string_view name) {
  std::string text(name);
  if (!text.empty() && std::isdigit(static_cast<unsigned char>(text[0]))) {
    int n = std::atoi(text.c_str());
    return n > 0 && n < 65 ? n : 0;
  }
  if (text.starts_with("SIG")) text = text.substr(3);
  for (int n = 1; n < 32; ++n)
    if (const char* abbrev = sigabbrev_np(n); abbrev && text == abbrev) return n;
  return 0;
}

Status ValidateService(const ServiceDef& s) {
  WHARF_TRY(ValidateServiceName(s.name));
  if (s.command.empty()) return Bad(s.name, "no command");
  if (!SafeRelative(s.command)) return Bad(s.name, "command \"" + s.command + "\" leaves the prefix with '..'");
  if (!SafeRelative(s.workdir)) return Bad(s.name, "workdir \"" + s.workdir + "\" leaves the prefix with '..'");
  if (s.restart != "always" && s.restart != "on-failure" && s.restart != "never")
    return Bad(s.name, "restart \"" + s.restart + "\": expected always, on-failure or never");
  if (s.holdoff < 0 || s.holdoff > 86400) return Bad(s.name, "holdoff must be 0 to 86400 seconds");
  if (s.grace < 0 || s.grace > 3600) return Bad(s.name, "grace must be 0 to 3600 seconds");
  if (s.level < 0 || s.level > 99) return Bad(s.name, "level must be 0 to 99");
  if (SignalNumber(s.stop_signal) == 0) return Bad(s.name, "stop_signal \"" + s.stop_signal + "\" is not a signal");
  for (const auto& [key, value] : s.env) {
    bool ok = !key.empty() && !std::isdigit(static_cast<unsigned char>(key[0]));
    for (char c : key) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (!ok) return Bad(s.name, "environment name \"" + key + "\" is not valid");
    if (value.find('\0') != std::string::npos) return Bad(s.name, "environment value of " + key + " holds a NUL");
  }
  if (s.configuration) {
    for (size_t i = 0; i < s.configuration->size(); ++i) {
      const std::string& name = (*s.configuration)[i];
      if (!ValidatePackageName(name))
        return Bad(s.name, "configuration \"" + name + "\" is not a package name; give the names of the "
                           "configuration packages it reads");
      if (std::find(s.configuration->begin(), s.configuration->begin() + static_cast<std::ptrdiff_t>(i), name) !=
          s.configuration->begin() + static_cast<std::ptrdiff_t>(i))
        return Bad(s.name, "configuration \"" + name + "\" is named twice");
    }
  }
  for (const std::string* text : {&s.command, &s.workdir, &s.user, &s.group})
    if (text->find('\0') != std::string::npos) return Bad(s.name, "a field holds a NUL");
  return {};
}

Result<ServiceDef> ParseServiceSpec(std::string_view spec) {
  size_t eq = spec.find('=');
  if (eq == std::string_view::npos)
    return Fail(ErrorCode::kInvalidArgument,
                "--service \"" + std::string(spec) + "\": expected NAME=COMMAND ARGS, e.g. ioc='bin/demoApp st.cmd'");
  ServiceDef s;
  s.name = std::string(spec.substr(0, eq));
  auto words = SplitWords(spec.substr(eq + 1));
  if (!words.empty()) {
    s.command = words[0];
    s.args.assign(words.begin() + 1, words.end());
  }
  WHARF_TRY(ValidateService(s));
  return s;
}

Status MergeServicesToml(const std::string& path, std::vector<ServiceDef>& services) {
  auto text = ReadTomlText(path);
  if (!text) return std::unexpected(text.error());
  toml::table table;
  try {
    table = toml::parse(*text, path);
  } catch (const toml::parse_error& e) {
    return Fail(ErrorCode::kInvalidArgument, path + ":" + std::to_string(e.source().begin.line) + ": " +
                                                 std::string(e.description()) + "; fix the file");
  }
  for (const auto& [key, node] : table) {
    std::string name(key.str());
    const toml::table* fields = node.as_table();
    if (!fields) return Fail(ErrorCode::kInvalidArgument, path + ": [" + name + "] must be a table");
    ServiceDef* s = nullptr;
    for (auto& existing : services)
      if (existing.name == name) s = &existing;
    if (!s) {
      services.push_back(ServiceDef{});
      s = &services.back();
      s->name = name;
    }
    for (const auto& [field, value] : *fields) {
      ordered_json v;
      if (auto str = value.value<std::string>(); str && value.is_string()) v = *str;
      else if (value.is_integer()) v = *value.value<int64_t>();
      else if (value.is_boolean()) v = *value.value<bool>();
      else if (const auto* array = value.as_array()) {
        v = ordered_json::array();
        for (const auto& item : *array)
          if (auto text = item.value<std::string>()) v.push_back(*text);
      } else if (const auto* inner = value.as_table()) {
        v = ordered_json::object();
        for (const auto& [k, item] : *inner)
          if (auto text = item.value<std::string>()) v[std::string(k.str())] = *text;
      }
      if (auto set = SetField(*s, std::string(field.str()), v); !set)
        return Prefix(path, set.error());
    }
    if (auto valid = ValidateService(*s); !valid) return Prefix(path, valid.error());
  }
  return {};
}

std::string ServicesToJson(const std::vector<ServiceDef>& services) {
  if (services.empty()) return "";
  ordered_json j = ordered_json::array();
  for (const auto& s : services) j.push_back(ToJson(s));
  return j.dump();
}

Result<std::vector<ServiceDef>> ServicesFromJson(std::string_view json) {
  std::vector<ServiceDef> out;
  if (json.empty()) return out;
  ordered_json j;
  try {
    j = ordered_json::parse(json);
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kCorrupt, std::string("services: not JSON (") + e.what() + ")");
  }
  if (!j.is_array()) return Fail(ErrorCode::kCorrupt, "services: expected a list");
  for (const auto& item : j) {
    if (!item.is_object()) return Fail(ErrorCode::kCorrupt, "services: each entry is an object");
    ServiceDef s;
    for (const auto& [key, value] : item.items()) WHARF_TRY(SetField(s, key, value));
    WHARF_TRY(ValidateService(s));
    for (const auto& other : out)
      if (other.name == s.name) return Fail(ErrorCode::kCorrupt, "service " + s.name + " is defined twice");
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::string> SetServiceOverrides(std::string_view services_json, const std::string& name,
                                        const std::vector<std::string>& settings) {
  WHARF_TRY(ValidateServiceName(name));
  ordered_json all = ordered_json::object();
  if (!services_json.empty()) {
    try {
      all = ordered_json::parse(services_json);
    } catch (const std::exception&) {
      return Fail(ErrorCode::kCorrupt, "the generation's services are not JSON");
    }
  }
  ordered_json& mine = all[name];
  if (!mine.is_object()) mine = ordered_json::object();
  for (const auto& setting : settings) {
    if (!IsValidUtf8(setting))  // JSON holds UTF-8 only (a byte like 0xff would throw)
      return Fail(ErrorCode::kInvalidArgument, "a setting of " + name + " is not valid UTF-8; fix its text");
    size_t eq = setting.find('=');
    if (eq == std::string::npos || eq == 0)
      return Fail(ErrorCode::kInvalidArgument, "\"" + setting + "\": expected KEY=VALUE, e.g. dev=true or env.PORT=5064");
    std::string key = setting.substr(0, eq);
    std::string value = setting.substr(eq + 1);
    if (key.starts_with("env.")) {
      if (!mine.contains("env")) mine["env"] = ordered_json::object();
      if (value.empty()) mine["env"].erase(key.substr(4));
      else mine["env"][key.substr(4)] = value;
      continue;
    }
    if (value.empty()) {
      mine.erase(key);
      continue;
    }
    ordered_json v;
    if (key == "args") v = SplitWords(value);
    else if (key == "configuration") {
      std::string words = value;
      std::replace(words.begin(), words.end(), ',', ' ');
      v = SplitWords(words);
    }
    else if (key == "holdoff" || key == "grace" || key == "level") {
      if (value.find_first_not_of("0123456789") != std::string::npos || value.size() > 6)
        return Fail(ErrorCode::kInvalidArgument, key + "=" + value + ": expected a number");
      v = std::stoi(value);
    } else if (key == "dev") {
      if (value != "true" && value != "false")
        return Fail(ErrorCode::kInvalidArgument, "dev=" + value + ": expected true or false");
      v = value == "true";
    } else {
      v = value;
    }
    ServiceDef probe;
    probe.name = name;
    WHARF_TRY(SetField(probe, key, v));  // refuses unknown keys
    mine[key] = v;
  }
  if (mine.contains("env") && mine["env"].empty()) mine.erase("env");
  if (mine.empty()) all.erase(name);
  return all.empty() ? std::string() : all.dump();
}

Result<ServiceDef> ApplyOverrides(ServiceDef base, std::string_view services_json) {
  if (services_json.empty()) return base;
  ordered_json all;
  try {
    all = ordered_json::parse(services_json);
  } catch (const std::exception&) {
    return Fail(ErrorCode::kCorrupt, "the generation's services are not JSON");
  }
  if (!all.is_object()) return Fail(ErrorCode::kCorrupt, "the generation's services must be an object");
  if (!all.contains(base.name)) return base;
  const ordered_json& mine = all[base.name];
  if (!mine.is_object()) return Fail(ErrorCode::kCorrupt, "overrides of " + base.name + " must be an object");
  for (const auto& [key, value] : mine.items()) {
    if (key == "env" && value.is_object()) {
      for (const auto& [k, v] : value.items())
        if (v.is_string()) base.env[k] = v.get<std::string>();
      continue;
    }
    if (key == "name") continue;
    WHARF_TRY(SetField(base, key, value));
  }
  WHARF_TRY(ValidateService(base));
  return base;
}

Status AddTreeServices(const std::string& dir, const std::string& file, std::vector<ServiceDef>& services) {
  std::string toml = file.empty() ? JoinPath(dir, "services.toml") : file;
  if (!file.empty() || PathExists(toml)) WHARF_TRY(MergeServicesToml(toml, services));
  for (const auto& service : services) WHARF_TRY(ValidateService(service));
  return {};
}

}  // namespace wharf
