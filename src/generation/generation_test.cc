#include "generation/generation.h"

#include <gtest/gtest.h>

#include "base/strings.h"

namespace wharf {
namespace {

constexpr int64_t kNow = 1795482123;  // 2026-11-24T01:02:03Z

PackageRef Ref(std::string name, std::string version, std::string prefix) {
  PackageRef p;
  p.name = name;
  p.version = version;
  p.prefix = prefix;
  p.archive = "software/" + name + "/" + version + "/" + name + "-" + version + ".tar.zst";
  p.archive_size = 10;
  p.archive_sha256 = std::string(64, 'a');
  p.index = "software/" + name + "/" + version + "/package.json";
  p.index_size = 5;
  p.index_sha256 = std::string(64, 'b');
  return p;
}

Generation First() {
  return NextGeneration("fec01", std::nullopt, "", {Ref("ioc", "1.0", "/opt/ioc")}, kNow,
                        kDefaultLifetimeSeconds);
}

PackageRef InArea(PackageRef p, const std::string& area) {
  std::string leaf = p.name + "/" + p.version + "/";
  p.archive = area + "/" + leaf + p.name + "-" + p.version + ".tar.zst";
  p.index = area + "/" + leaf + "package.json";
  return p;
}

}  // namespace

TEST(Generation, ConfigurationsLiveInTheirAreasOnly) {
  Generation g = First();
  g.packages.push_back(InArea(Ref("ps-conf", "1", "/opt/ps-conf"), "configuration"));
  g.packages.push_back(InArea(Ref("ps-local", "1", "/etc/ps"), "fecs/fec01/configuration"));
  ASSERT_TRUE(ValidateGeneration(g));
  EXPECT_TRUE(IsConfiguration(g.packages[1]));
  EXPECT_FALSE(IsConfiguration(g.packages[0]));
  auto parsed = ParseGeneration(GenerationToJson(g));
  ASSERT_TRUE(parsed) << parsed.error().message;
  // Another FEC's own configuration, or any other folder, is not a path a generation may name.
  for (const char* area : {"fecs/fec02/configuration", "fecs/fec01/software", "fecs/global/configuration", "other"}) {
    Generation bad = First();
    bad.packages.push_back(InArea(Ref("ps-local", "1", "/etc/ps"), area));
    EXPECT_FALSE(ValidateGeneration(bad)) << area;
  }
}

TEST(Generation, ConfigurationMismatchesNameWhatDiffers) {
  std::vector<PackageRef> packages = {Ref("fesa-ps", "2.1", "/opt/ps"),
                                      InArea(Ref("ps-conf", "2", "/opt/c"), "configuration")};
  EXPECT_TRUE(ConfigurationMismatches(packages, {{"ps-conf@2", {{"fesa-ps", "2.1"}}}}).empty());
  auto other = ConfigurationMismatches(packages, {{"ps-conf@2", {{"fesa-ps", "2.2"}}}});
  ASSERT_EQ(other.size(), 1u);
  EXPECT_EQ(other[0], (ForcedMatch{"ps-conf@2", "fesa-ps@2.2", "fesa-ps@2.1"}));
  auto missing = ConfigurationMismatches(packages, {{"ps-conf@2", {{"fesa-ts", "1"}}}});
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0].found, "");
}

// The default: a service reads the configurations made for its package (any version of
// it), not those made for another one, nor those that declare nothing.
TEST(Generation, ServiceReadsTheConfigurationsMadeForItsPackage) {
  std::vector<ConfigurationMatches> configs = {{"ps-conf@2", {{"fesa-ps", "2.1"}}},
                                               {"ts-conf@1", {{"fesa-ts", "1"}}},
                                               {"both@3", {{"fesa-ts", "1"}, {"fesa-ps", "2.0"}}},
                                               {"site@7", {}}};
  EXPECT_EQ(ConfigurationsRead("fesa-ps", std::nullopt, configs), (std::vector<std::string>{"both@3", "ps-conf@2"}));
  EXPECT_EQ(ConfigurationsRead("fesa-ts", std::nullopt, configs), (std::vector<std::string>{"both@3", "ts-conf@1"}));
  EXPECT_TRUE(ConfigurationsRead("fesa-p", std::nullopt, configs).empty());  // a name, not a prefix
  EXPECT_TRUE(ConfigurationsRead("ps-conf", std::nullopt, configs).empty());
  EXPECT_TRUE(ConfigurationsRead("fesa-ps", std::nullopt, {}).empty());
}

// Declared: exactly the names given, whatever they match; an empty list reads none; a name
// the generation does not hold is left out.
TEST(Generation, DeclaredConfigurationsReplaceTheDefault) {
  std::vector<ConfigurationMatches> configs = {{"ps-conf@2", {{"fesa-ps", "2.1"}}}, {"site@7", {}}};
  using Names = std::vector<std::string>;
  EXPECT_EQ(ConfigurationsRead("fesa-ps", Names{"site"}, configs), Names{"site@7"});
  EXPECT_EQ(ConfigurationsRead("tool", Names{"site", "ps-conf", "gone"}, configs), (Names{"ps-conf@2", "site@7"}));
  EXPECT_TRUE(ConfigurationsRead("fesa-ps", Names{}, configs).empty());
  EXPECT_TRUE(ConfigurationsRead("fesa-ps", Names{"ps"}, configs).empty());  // no prefix match
}

TEST(Generation, PersistentPathsAreCheckedAndRoundTrip) {
  Generation g = First();
  g.persist = {{"/var/lib/ioc", "/var/lib/ioc-autosave"}, 900};
  ASSERT_TRUE(ValidateGeneration(g));
  auto parsed = ParseGeneration(GenerationToJson(g));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->persist, g.persist);
  for (Persist bad : {Persist{{"var/lib/ioc"}, 900}, Persist{{"/var/lib/../etc"}, 900},
                      Persist{{"/opt/ioc/data"}, 900},  // inside a package prefix: replaced on update
                      Persist{{"/var/lib/wharf"}, 900}, Persist{{"/data", "/data/x"}, 900},
                      Persist{{"/b", "/a"}, 900}, Persist{{"/data"}, 10}}) {
    Generation b = First();
    b.persist = bad;
    EXPECT_FALSE(ValidateGeneration(b)) << (bad.paths.empty() ? "" : bad.paths[0]);
  }
}

TEST(Generation, JsonRoundTripsExactly) {
  Generation g = First();
  std::string json = GenerationToJson(g);
  auto parsed = ParseGeneration(json);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(GenerationToJson(*parsed), json);
  EXPECT_NE(json.find("\"created\": \"2026-11-24T01:02:03Z\""), std::string::npos);
}

TEST(Generation, NextChainsNumberParentAndTime) {
  Generation g1 = First();
  std::string json1 = GenerationToJson(g1);
  Generation g2 = NextGeneration("fec01", g1, json1, {}, kNow - 100, 60);
  EXPECT_EQ(g2.number, 2u);
  EXPECT_EQ(g2.parent.size(), 64u);
  EXPECT_EQ(g2.created, kNow) << "a clock that went back must not make time go back";
  EXPECT_EQ(g2.expires, kNow + 60);
}

TEST(Generation, ParseRefusesUnsafeNamesAndPaths) {
  Generation g = First();
  g.packages[0].archive = "software/ioc/1.0/../../../etc/passwd";
  EXPECT_FALSE(ParseGeneration(GenerationToJson(g)));
  g = First();
  g.fec = "../x";
  EXPECT_FALSE(ParseGeneration(GenerationToJson(g)));
  EXPECT_FALSE(ParseGeneration("{\"format\": 1}"));
  EXPECT_FALSE(ParseGeneration("not json"));
}

TEST(Generation, AssignReplacesSameName) {
  auto result = AssignPackages({Ref("ioc", "1.0", "/opt/ioc"), Ref("cfg", "1", "/etc/x")},
                               {Ref("ioc", "2.0", "/opt/ioc")});
  ASSERT_TRUE(result);
  ASSERT_EQ(result->size(), 2u);
  EXPECT_EQ((*result)[0].name, "cfg");
  EXPECT_EQ((*result)[1].version, "2.0");
}

TEST(Generation, AssignRefusesTwoVersionsOfOnePackage) {
  auto result = AssignPackages({}, {Ref("ioc", "1.0", "/opt/ioc"), Ref("ioc", "2.0", "/opt/ioc")});
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("named twice"), std::string::npos);
}

TEST(Generation, AssignRefusesOverlappingPrefixes) {
  auto result = AssignPackages({Ref("a", "1", "/opt/fesa")}, {Ref("b", "1", "/opt/fesa/b")});
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("overlap"), std::string::npos);
  EXPECT_TRUE(AssignPackages({Ref("a", "1", "/opt/fesa")}, {Ref("b", "1", "/opt/fesab")}));
}

TEST(Generation, UnassignRefusesUnknownName) {
  EXPECT_FALSE(UnassignPackages({Ref("a", "1", "/opt/a")}, {"b"}));
  EXPECT_TRUE(UnassignPackages({Ref("a", "1", "/opt/a")}, {"a"})->empty());
}

TEST(Generation, RefusesAnotherFecsGeneration) {
  auto result = CheckAcceptable(First(), "fec02", {}, kNow);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kRejected);
  EXPECT_NE(result.error().message.find("fec01"), std::string::npos);
}

TEST(Generation, RefusesOlderNumber) {
  auto result = CheckAcceptable(First(), "fec01", {5, kNow, ""}, kNow);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("older than generation 5"), std::string::npos);
}

TEST(Generation, RefusesExpired) {
  Generation g = First();
  EXPECT_TRUE(CheckAcceptable(g, "fec01", {}, g.expires - 1));
  EXPECT_FALSE(CheckAcceptable(g, "fec01", {}, g.expires));
}

TEST(Generation, OfflineMarkerRoundTripsAndOldGenerationsStayOnline) {
  Generation g = First();
  std::string online = GenerationToJson(g);
  EXPECT_EQ(online.find("offline"), std::string::npos) << "an online generation keeps the old bytes";
  g.offline = true;
  std::string json = GenerationToJson(g);
  auto parsed = ParseGeneration(json);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(parsed->offline);
  EXPECT_EQ(GenerationToJson(*parsed), json);
  EXPECT_FALSE(ParseGeneration(online)->offline);
  std::string bad = json;
  bad.replace(bad.find("\"offline\": true"), 15, "\"offline\": \"1\"");
  EXPECT_FALSE(ParseGeneration(bad));
}

TEST(Generation, ExpiredOfflineGenerationRunsOnlyFromALocalMedium) {
  Generation g = First();
  g.offline = true;
  auto local = CheckAcceptable(g, "fec01", {}, g.expires + 86400, Medium::kLocal);
  ASSERT_TRUE(local) << local.error().message;
  EXPECT_TRUE(local->expired_offline);
  // Within its lifetime it is simply valid.
  auto fresh = CheckAcceptable(g, "fec01", {}, g.expires - 1, Medium::kLocal);
  ASSERT_TRUE(fresh);
  EXPECT_FALSE(fresh->expired_offline);
  // Over the network someone could replay it: it expires like any other.
  auto network = CheckAcceptable(g, "fec01", {}, g.expires, Medium::kNetwork);
  ASSERT_FALSE(network);
  EXPECT_NE(network.error().message.find("only from a file:// store"), std::string::npos);
  // Never below the floor, medium or not.
  EXPECT_FALSE(CheckAcceptable(g, "fec01", {5, kNow, ""}, g.expires + 1, Medium::kLocal));
}

TEST(Generation, ExpiredOnlineGenerationIsRefusedFromALocalMediumToo) {
  Generation g = First();
  auto result = CheckAcceptable(g, "fec01", {}, g.expires, Medium::kLocal);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("wharf refresh"), std::string::npos);
}

TEST(Generation, ExpiryNoteSaysWhatRunsPastItsExpiry) {
  Generation g = First();
  EXPECT_EQ(ExpiryNote(g, g.expires - 1), "");
  EXPECT_EQ(ExpiryNote(g, g.expires), "running generation 1, expired at " + FormatTime(g.expires));
  g.offline = true;
  EXPECT_EQ(ExpiryNote(g, g.expires + 5), "running expired offline generation 1 (expired at " + FormatTime(g.expires) + ")");
}

TEST(Generation, ClockBehindFloorIsJudgedByFloor) {
  Generation g = First();
  // A board at 1970 that already accepted something newer than g's expiry: refused.
  auto stale = CheckAcceptable(g, "fec01", {0, g.expires + 10, ""}, 0);
  ASSERT_FALSE(stale);
  EXPECT_NE(stale.error().message.find("clock is behind"), std::string::npos);
  // The same board with a floor inside g's lifetime accepts, and says the clock is wrong.
  auto fresh = CheckAcceptable(g, "fec01", {0, g.created, ""}, 0);
  ASSERT_TRUE(fresh);
  EXPECT_TRUE(fresh->clock_behind);
  EXPECT_EQ(fresh->effective_now, g.created);
}

TEST(Generation, RollbackGoesToLastDifferentContent) {
  Generation g1 = First();
  Generation g2 = NextGeneration("fec01", g1, "1", {Ref("ioc", "2.0", "/opt/ioc")}, kNow, 60);
  Generation g3 = NextGeneration("fec01", g2, "2", g2.packages, kNow, 60);  // a refresh
  auto target = RollbackTarget({g1, g2, g3}, std::nullopt);
  ASSERT_TRUE(target);
  EXPECT_EQ(target->number, 1u);
  EXPECT_EQ(RollbackTarget({g1, g2, g3}, 2)->number, 2u);
  EXPECT_FALSE(RollbackTarget({g1, g2, g3}, 9));
  EXPECT_FALSE(RollbackTarget({g1}, std::nullopt));
}

}  // namespace wharf

namespace wharf {
namespace {

TEST(Generation, InitScriptsRoundTripAndOnlyComeFromTheFecsOrGlobalFolder) {
  Generation g = First();
  g.init = {{"10-net", "fecs/global/init-sha256/" + std::string(64, 'c'), 12, std::string(64, 'c'), 30},
            {"20-own", "fecs/fec01/init-sha256/" + std::string(64, 'd'), 7, std::string(64, 'd'), 60}};
  g.init_stop_on_failure = true;
  auto parsed = ParseGeneration(GenerationToJson(g));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->init, g.init);
  EXPECT_TRUE(parsed->init_stop_on_failure);
  for (const char* path : {"fecs/fec02/init/20-own", "fecs/fec01/init/../../../etc/passwd", "/etc/passwd",
                           "fecs/fec01/software/x", "fecs/global/init/.hidden",
                           // a blob path must name the script's own sha256
                           "fecs/fec01/init-sha256/ddd", "fecs/fec02/init-sha256/dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
                           "fecs/fec01/init-sha256/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"}) {
    Generation bad = g;
    bad.init[1].path = path;
    EXPECT_FALSE(ParseGeneration(GenerationToJson(bad))) << path;
  }
  Generation unordered = g;
  std::swap(unordered.init[0], unordered.init[1]);
  EXPECT_FALSE(ParseGeneration(GenerationToJson(unordered)));
  Generation forever = g;
  forever.init[0].timeout = 0;
  EXPECT_FALSE(ParseGeneration(GenerationToJson(forever)));
  // A generation without scripts keeps its exact bytes (no "init" key).
  EXPECT_EQ(GenerationToJson(First()).find("init"), std::string::npos);
}

}  // namespace
}  // namespace wharf

namespace wharf {
namespace {

TEST(Generation, OldGenerationsNamingScriptsByNameStillParseAndFetchTheBlobFirst) {
  Generation g = First();
  g.init = {{"10-net", "fecs/global/init/10-net", 12, std::string(64, 'c'), 30},
            {"20-own", "fecs/fec01/init-sha256/" + std::string(64, 'd'), 7, std::string(64, 'd'), 60}};
  auto parsed = ParseGeneration(GenerationToJson(g));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->init, g.init);
  EXPECT_EQ(InitFetchPaths(g.init[0]),
            (std::vector<std::string>{"fecs/global/init-sha256/" + std::string(64, 'c'), "fecs/global/init/10-net"}));
  EXPECT_EQ(InitFetchPaths(g.init[1]), (std::vector<std::string>{g.init[1].path}));
  EXPECT_EQ(InitOwner(g.init[1]), "fec01");
  EXPECT_EQ(InitBlobPath("global", "ab"), "fecs/global/init-sha256/ab");
}

}  // namespace
}  // namespace wharf
