// `wharf-agent verify [--repair] [--json]`: drift of the installed packages (agent/drift.h).
#include <algorithm>
#include <chrono>
#include <optional>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "agent/agent.h"
#include "agent/drift.h"
#include "agent/state.h"
#include "cli/agent_cli.h"
#include "base/file.h"
#include "base/strings.h"
#include "cli/output.h"

namespace wharf {

Result<AgentConfig> MakeAgentConfig(AgentArgs& args, bool need_store);

namespace {

constexpr const char* kProgram = "wharf-agent";

std::string Line(const Drift& d) {
  std::string line = d.package;
  for (const std::string& part : {std::string(": "), d.path, std::string(": "), std::string(DriftKindName(d.kind)),
                                  std::string(" (want "), d.want, std::string(", have "), d.have, std::string(")")})
    line += part;
  return line;
}

nlohmann::ordered_json DriftJson(const Drift& d) {
  return {{"package", d.package}, {"path", d.path}, {"kind", DriftKindName(d.kind)}, {"want", d.want},
          {"have", d.have}};
}

}  // namespace

int RunAgentVerify(const AgentArgs& given) {
  AgentArgs args = given;
  if (!args.repair && args.fec.empty()) args.fec.push_back('-');  // not needed to compare
  auto config = MakeAgentConfig(args, args.repair);
  if (!config) return ReportError(kProgram, config.error(), kExitUsage);
  Layout layout(config->root);
  if (!IsDirectory(layout.base()))
    return ReportError(kProgram, {ErrorCode::kNotFound, config->root + ": no generation applied yet; sync first"});
  auto lock = FileLock::Acquire(layout.lock());
  if (!lock) return ReportError(kProgram, lock.error());
  auto active = ReadActive(layout);
  if (!active) return ReportError(kProgram, active.error());
  if (!*active)
    return ReportError(kProgram, {ErrorCode::kNotFound, config->root + ": no generation applied yet; sync first"});
  const Generation& generation = (*active)->generation;
  auto start = std::chrono::steady_clock::now();
  auto report = VerifyInstalled(layout, generation);
  if (!report) return ReportError(kProgram, report.error());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<Drift> before = report->drifts;
  std::vector<Drift> after = before;
  std::vector<std::pair<std::string, RepairStats>> repairs;
  std::optional<Error> failure;
  if (args.repair && !before.empty()) {
    Fetcher fetcher;
    fetcher.set_deadline(config->deadline);
    Mirrors mirrors(config->stores, fetcher);
    for (const auto& ref : generation.packages) {
      std::vector<Drift> mine;
      for (const auto& d : before)
        if (d.package == ref.name + "@" + ref.version) mine.push_back(d);
      if (mine.empty()) continue;
      auto repaired = RepairPackage(layout, mirrors, ref, mine);
      if (!repaired) {
        failure = Prefix(ref.name + "@" + ref.version, repaired.error()).error();
        break;
      }
      repairs.push_back({ref.name + "@" + ref.version, *repaired});
    }
    auto again = VerifyInstalled(layout, generation);
    if (!again) return ReportError(kProgram, again.error());
    after = again->drifts;
  }
  // Packages found exactly as indexed get a fresh stamp: the next sync need not re-hash them.
  for (const auto& ref : generation.packages)
    if (std::none_of(after.begin(), after.end(), [&](const Drift& d) { return d.package == ref.name + "@" + ref.version; }))
      (void)WriteStamp(layout, ref);
  int code = after.empty() ? kExitOk : args.repair ? kExitFailure : kAgentExitDrift;
  if (failure && (failure->code == ErrorCode::kUnavailable || failure->code == ErrorCode::kTimedOut))
    code = kAgentExitOffline;
  if (args.json) {
    nlohmann::ordered_json j{{"generation", generation.number}, {"packages", report->packages},
                             {"entries", report->entries}, {"bytes", report->bytes},
                             {"seconds", seconds}, {"drift", nlohmann::ordered_json::array()}};
    for (const auto& d : before) j["drift"].push_back(DriftJson(d));
    if (args.repair) {
      j["repaired"] = nlohmann::ordered_json::array();
      for (const auto& [package, s] : repairs)
        j["repaired"].push_back({{"package", package}, {"files", s.files}, {"removed", s.removed},
                                 {"links", s.links}, {"folders", s.folders}, {"modes", s.modes},
                                 {"bytes_fetched", s.bytes_fetched}, {"reinstalled", s.reinstalled}});
      j["remaining"] = nlohmann::ordered_json::array();
      for (const auto& d : after) j["remaining"].push_back(DriftJson(d));
    }
    j["clean"] = after.empty();
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    for (const auto& d : before) PrintHuman(stdout, "%s\n", Line(d).c_str());
    for (const auto& [package, s] : repairs)
      PrintHuman(stdout, "repaired %s: %zu files fetched again (%s), %zu removed, %zu links, %zu folders, %zu modes\n",
                 package.c_str(), s.files, HumanBytes(s.bytes_fetched).c_str(), s.removed, s.links, s.folders,
                 s.modes);
    if (args.repair)
      for (const auto& d : after) PrintHuman(stdout, "still differs: %s\n", Line(d).c_str());
    std::string verdict = "no drift";
    if (!before.empty()) verdict = after.empty() ? "drift repaired" : std::to_string(after.size()) + " differences";
    PrintHuman(stdout, "generation %llu: %zu packages, %zu entries, %s hashed in %.2f s: %s\n",
               static_cast<unsigned long long>(generation.number), report->packages, report->entries,
               HumanBytes(report->bytes).c_str(), seconds, verdict.c_str());
  }
  if (failure) ReportError(kProgram, *failure);
  return code;
}

}  // namespace wharf
