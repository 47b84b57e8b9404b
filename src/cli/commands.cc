#include "cli/commands.h"

#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/file.h"
#include "base/strings.h"
#include "cli/output.h"
#include "crypto/sign.h"
#include "store/changes.h"
#include "store/store.h"

namespace wharf {
namespace {

using nlohmann::ordered_json;
constexpr const char* kProgram = "wharf";

int Failed(const Error& error) { return ReportError(kProgram, error); }

void PrintJson(const ordered_json& j) { std::printf("%s\n", j.dump(2).c_str()); }

ordered_json PackageJson(const PackageRef& p) {
  return {{"name", p.name}, {"version", p.version}, {"prefix", p.prefix},
          {"archive", p.archive}, {"size", p.archive_size}, {"sha256", p.archive_sha256}};
}

ordered_json GenerationSummary(const Generation& g) {
  ordered_json j{{"fec", g.fec}, {"number", g.number}, {"created", FormatTime(g.created)},
                 {"expires", FormatTime(g.expires)}, {"packages", ordered_json::array()}};
  for (const auto& p : g.packages) j["packages"].push_back(PackageJson(p));
  return j;
}

std::string PackagesText(const Generation& g) {
  std::string text;
  for (const auto& p : g.packages) text += (text.empty() ? "" : " ") + p.name + "@" + p.version;
  return text.empty() ? "(nothing)" : text;
}

// Prints what a change did (or would do, with --dry-run).
int ReportChange(const Result<Generation>& result, const StoreArgs& args, const char* verb) {
  if (!result) return Failed(result.error());
  const Generation& g = *result;
  if (args.json) {
    ordered_json j = GenerationSummary(g);
    j["dry_run"] = args.dry_run;
    PrintJson(j);
  } else {
    std::printf("%s%s: %s generation %llu: %s (expires %s)\n", args.dry_run ? "dry run: " : "",
                g.fec.c_str(), verb, static_cast<unsigned long long>(g.number),
                PackagesText(g).c_str(), FormatTime(g.expires).c_str());
  }
  return kExitOk;
}

// "90s", "12h", "30d" (a bare number is days).
Result<int64_t> ParseDuration(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  std::string unit = text.substr(digits);
  int64_t scale = unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600
                : unit == "d" || unit.empty() ? 86400 : 0;
  if (digits == 0 || digits > 9 || scale == 0 || std::stoll(text.substr(0, digits)) == 0)
    return Fail(ErrorCode::kInvalidArgument,
                "--expires-in " + text + ": expected a positive duration like 90s, 12h or 30d");
  return std::stoll(text.substr(0, digits)) * scale;
}

struct Opened {
  Store store;
  std::optional<PrivateKey> key;
};

Result<Opened> OpenForChange(const StoreArgs& args) {
  if (auto lifetime = ParseDuration(args.expires_in); !lifetime)
    return std::unexpected(lifetime.error());
  auto store = Store::Open(args.store, false);
  if (!store) return std::unexpected(store.error());
  Opened opened{std::move(*store), std::nullopt};
  if (!args.dry_run) {
    if (args.key.empty())
      return Fail(ErrorCode::kInvalidArgument,
                  "a signing key is needed: pass --key NAME.key (made by `wharf keygen`)");
    auto key = PrivateKey::Load(args.key);
    if (!key) return std::unexpected(key.error());
    opened.key = std::move(*key);
  }
  return opened;
}

Result<ChangeOptions> MakeChangeOptions(const Opened& opened, const StoreArgs& args) {
  auto lifetime = ParseDuration(args.expires_in);
  if (!lifetime) return std::unexpected(lifetime.error());
  ChangeOptions options;
  options.key = opened.key ? &*opened.key : nullptr;
  options.now = SystemClock().Now();
  options.lifetime_seconds = *lifetime;
  options.dry_run = args.dry_run;
  return options;
}

}  // namespace

int RunKeygen(const std::string& out, bool json) {
  auto key = GenerateKeyPair(out);
  if (!key) return Failed(key.error());
  if (json) {
    PrintJson({{"private", out + ".key"}, {"public", out + ".pub"}, {"key_id", key->id}});
  } else {
    std::printf("%s.key (keep it secret) and %s.pub written; key id %s\n", out.c_str(),
                out.c_str(), key->id.c_str());
  }
  return kExitOk;
}

int RunPack(const std::string& dir, PackOptions options, bool json) {
  bool tty = ::isatty(2);
  if (tty && !json)
    options.progress = [](uint64_t done, uint64_t total) {
      std::fprintf(stderr, "\rpacking: %s of %s", HumanBytes(done).c_str(), HumanBytes(total).c_str());
    };
  auto result = PackTree(dir, options);
  if (tty && !json) std::fprintf(stderr, "\r\033[K");
  if (!result) return Failed(result.error());
  const PackageIndex& index = result->index;
  if (json) {
    PrintJson({{"archive", result->archive_path}, {"index", result->index_path},
               {"name", index.name}, {"version", index.version}, {"prefix", index.prefix},
               {"files", index.files.size()}, {"frames", index.frames.size()},
               {"raw_size", index.raw_size}, {"size", index.archive_size},
               {"sha256", index.archive_sha256}});
  } else {
    std::printf("%s: %zu entries, %s -> %s in %zu frames\n", result->archive_path.c_str(),
                index.files.size(), HumanBytes(index.raw_size).c_str(),
                HumanBytes(index.archive_size).c_str(), index.frames.size());
  }
  return kExitOk;
}

int RunPublish(const std::vector<std::string>& archives, const StoreArgs& args) {
  auto store = Store::Open(args.store, true);
  if (!store) return Failed(store.error());
  ordered_json out = ordered_json::array();
  for (const auto& archive : archives) {
    if (!archive.ends_with(".tar.zst"))
      return ReportError(kProgram, {ErrorCode::kInvalidArgument,
                                    archive + ": not a .tar.zst made by `wharf pack`"}, kExitUsage);
    std::string index = archive.substr(0, archive.size() - 8) + ".package.json";
    if (!PathExists(index))
      return Failed({ErrorCode::kNotFound, index + " is missing: publish the archive together "
                                                   "with the package.json `wharf pack` wrote beside it"});
    auto outcome = store->Publish(archive, index, args.dry_run, args.delta_bases);
    if (!outcome) return Failed(outcome.error());
    const PackageIndex& i = outcome->index;
    std::string state = outcome->already_present ? "already published (same bytes)"
                        : args.dry_run             ? "would be published"
                                                   : "published";
    if (args.json) {
      out.push_back({{"name", i.name}, {"version", i.version}, {"size", i.archive_size},
                     {"sha256", i.archive_sha256}, {"already_present", outcome->already_present},
                     {"dry_run", args.dry_run}});
    } else {
      std::printf("%s@%s: %s (%s)\n", i.name.c_str(), i.version.c_str(), state.c_str(),
                  HumanBytes(i.archive_size).c_str());
    }
  }
  if (args.json) PrintJson(out);
  return kExitOk;
}

int RunAssign(const std::string& fec, const std::vector<std::string>& specs, const StoreArgs& args) {
  std::vector<NameVersion> packages;
  for (const auto& spec : specs) {
    auto nv = ParseNameVersion(spec);
    if (!nv) return ReportError(kProgram, nv.error(), kExitUsage);
    packages.push_back(*nv);
  }
  auto opened = OpenForChange(args);
  if (!opened) return Failed(opened.error());
  return ReportChange(Assign(opened->store, fec, packages, *MakeChangeOptions(*opened, args)), args,
                      "assigned");
}

int RunUnassign(const std::string& fec, const std::vector<std::string>& names, const StoreArgs& args) {
  auto opened = OpenForChange(args);
  if (!opened) return Failed(opened.error());
  return ReportChange(Unassign(opened->store, fec, names, *MakeChangeOptions(*opened, args)), args,
                      "unassigned, now");
}

int RunRollback(const std::string& fec, std::optional<uint64_t> to, const StoreArgs& args) {
  auto opened = OpenForChange(args);
  if (!opened) return Failed(opened.error());
  return ReportChange(Rollback(opened->store, fec, to, *MakeChangeOptions(*opened, args)), args,
                      "rolled back in");
}

int RunRefresh(const std::vector<std::string>& fecs, const StoreArgs& args) {
  auto opened = OpenForChange(args);
  if (!opened) return Failed(opened.error());
  std::vector<std::string> targets = fecs;
  if (targets.empty()) {
    auto all = opened->store.Fecs();
    if (!all) return Failed(all.error());
    targets = *all;
  }
  int code = kExitOk;
  for (const auto& fec : targets) {
    auto current = opened->store.CurrentGeneration(fec);
    if (current && !*current && fecs.empty()) continue;  // a folder without a generation yet
    int one = ReportChange(Refresh(opened->store, fec, *MakeChangeOptions(*opened, args)), args,
                           "refreshed as");
    if (one != kExitOk) code = one;
  }
  return code;
}

int RunShow(const std::string& fec, const StoreArgs& args) {
  auto store = Store::Open(args.store, false);
  if (!store) return Failed(store.error());
  auto current = store->CurrentGeneration(fec);
  if (!current) return Failed(current.error());
  if (!*current)
    return Failed({ErrorCode::kNotFound,
                   fec + " has no generation in " + store->root() + "; `wharf assign` one"});
  auto history = store->History(fec);
  if (!history) return Failed(history.error());
  const Generation& g = (*current)->generation;
  if (args.json) {
    ordered_json j = GenerationSummary(g);
    j["parent"] = g.parent;
    j["history"] = ordered_json::array();
    for (const auto& h : *history)
      j["history"].push_back({{"number", h.number}, {"created", FormatTime(h.created)},
                              {"packages", PackagesText(h)}});
    PrintJson(j);
    return kExitOk;
  }
  std::printf("FEC %s: generation %llu, created %s, expires %s\n", fec.c_str(),
              static_cast<unsigned long long>(g.number), FormatTime(g.created).c_str(),
              FormatTime(g.expires).c_str());
  std::printf("  %-24s %-16s %-32s %10s\n", "PACKAGE", "VERSION", "PREFIX", "SIZE");
  for (const auto& p : g.packages)
    std::printf("  %-24s %-16s %-32s %10s\n", p.name.c_str(), p.version.c_str(), p.prefix.c_str(),
                HumanBytes(p.archive_size).c_str());
  std::printf("history:\n");
  for (const auto& h : *history)
    std::printf("  %4llu  %s  %s\n", static_cast<unsigned long long>(h.number),
                FormatTime(h.created).c_str(), PackagesText(h).c_str());
  return kExitOk;
}

int RunList(const StoreArgs& args, bool packages) {
  auto store = Store::Open(args.store, false);
  if (!store) return Failed(store.error());
  ordered_json out = ordered_json::array();
  if (packages) {
    auto names = ListDir(JoinPath(store->root(), "software"));
    if (!names) return Failed(names.error());
    for (const auto& name : *names) {
      auto versions = store->Versions(name);
      if (!versions) continue;
      out.push_back({{"name", name}, {"versions", *versions}});
      if (!args.json) {
        std::string text;
        for (const auto& v : *versions) text += " " + v;
        std::printf("%-24s%s\n", name.c_str(), text.c_str());
      }
    }
  } else {
    auto fecs = store->Fecs();
    if (!fecs) return Failed(fecs.error());
    for (const auto& fec : *fecs) {
      auto current = store->CurrentGeneration(fec);
      if (!current || !*current) continue;
      out.push_back(GenerationSummary((*current)->generation));
      if (!args.json)
        std::printf("%-16s %4llu  %s\n", fec.c_str(),
                    static_cast<unsigned long long>((*current)->generation.number),
                    PackagesText((*current)->generation).c_str());
    }
  }
  if (args.json) PrintJson(out);
  return kExitOk;
}

}  // namespace wharf
