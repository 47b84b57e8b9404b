#include "service/definition.h"

#include <gtest/gtest.h>

#include "base/scratch_dir.h"

namespace wharf {
namespace {

TEST(ServiceDefinition, SpecSplitsCommandAndQuotedArguments) {
  auto s = ParseServiceSpec("ioc=bin/demoApp 'st cmd' \"-x y\" z");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->name, "ioc");
  EXPECT_EQ(s->command, "bin/demoApp");
  EXPECT_EQ(s->args, (std::vector<std::string>{"st cmd", "-x y", "z"}));
  EXPECT_FALSE(ParseServiceSpec("no-equals"));
  EXPECT_FALSE(ParseServiceSpec("../x=bin/a"));
  EXPECT_FALSE(ParseServiceSpec("ioc=../../bin/sh"));
  EXPECT_FALSE(ParseServiceSpec("ioc="));
}

TEST(ServiceDefinition, TomlFillsTheOtherFields) {
  ScratchDir dir;
  WriteTestFile(dir / "services.toml", R"(
[ioc]
workdir = "iocBoot/iocdemo"
env = { EPICS_CA_ADDR_LIST = "10.0.0.255" }
restart = "on-failure"
holdoff = 5
level = 10
[tool]
command = "bin/tool"
args = ["--serve"]
dev = true
)");
  std::vector<ServiceDef> services{*ParseServiceSpec("ioc=bin/demoApp st.cmd")};
  ASSERT_TRUE(MergeServicesToml(dir / "services.toml", services));
  ASSERT_EQ(services.size(), 2u);
  EXPECT_EQ(services[0].workdir, "iocBoot/iocdemo");
  EXPECT_EQ(services[0].env.at("EPICS_CA_ADDR_LIST"), "10.0.0.255");
  EXPECT_EQ(services[0].restart, "on-failure");
  EXPECT_EQ(services[0].holdoff, 5);
  EXPECT_TRUE(services[1].dev);
  auto back = ServicesFromJson(ServicesToJson(services));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, services);
  WriteTestFile(dir / "bad.toml", "[x]\ncommand = \"a\"\nrestrat = \"never\"\n");
  std::vector<ServiceDef> none;
  auto refused = MergeServicesToml(dir / "bad.toml", none);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("restrat"), std::string::npos);
}

TEST(ServiceDefinition, GenerationOverridesWinAndCanBeCleared) {
  ServiceDef base = *ParseServiceSpec("ioc=bin/demoApp st.cmd");
  auto json = SetServiceOverrides("", "ioc", {"dev=true", "env.PORT=5064", "holdoff=3", "args=a 'b c'"});
  ASSERT_TRUE(json) << json.error().message;
  auto merged = ApplyOverrides(base, *json);
  ASSERT_TRUE(merged);
  EXPECT_TRUE(merged->dev);
  EXPECT_EQ(merged->env.at("PORT"), "5064");
  EXPECT_EQ(merged->holdoff, 3);
  EXPECT_EQ(merged->args, (std::vector<std::string>{"a", "b c"}));
  auto cleared = SetServiceOverrides(*json, "ioc", {"dev=", "env.PORT=", "holdoff=", "args="});
  ASSERT_TRUE(cleared);
  EXPECT_EQ(*cleared, "");
  EXPECT_EQ(*ApplyOverrides(base, *cleared), base);
  EXPECT_FALSE(SetServiceOverrides("", "ioc", {"colour=red"}));
  EXPECT_FALSE(SetServiceOverrides("", "ioc", {"holdoff=soon"}));
  EXPECT_FALSE(SetServiceOverrides("", "ioc", {"env.X=\xff"}));  // JSON is UTF-8 (it threw: fuzzing)
  auto escaping = SetServiceOverrides("", "ioc", {"command=../../bin/sh"});
  ASSERT_TRUE(escaping);  // stored as given, refused when applied
  EXPECT_FALSE(ApplyOverrides(base, *escaping));
}

// `configuration`: absent (the default rule) is not the same as an empty list (reads
// none); absent leaves the JSON as it was before the field existed (the fingerprint of a
// service that reads no configuration must not change with an agent upgrade).
TEST(ServiceDefinition, ConfigurationListFromTomlJsonAndOverrides) {
  ServiceDef base = *ParseServiceSpec("ioc=bin/demoApp st.cmd");
  EXPECT_FALSE(base.configuration);
  EXPECT_EQ(ServicesToJson({base}),
            R"([{"name":"ioc","command":"bin/demoApp","args":["st.cmd"],"restart":"always","holdoff":15,)"
            R"("stop_signal":"SIGTERM","grace":10,"level":50,"dev":false}])");
  ScratchDir dir;
  WriteTestFile(dir / "services.toml", "[ioc]\nconfiguration = [\"ioc-db\", \"site\"]\n[tool]\ncommand = \"t\"\n"
                                       "configuration = []\n");
  std::vector<ServiceDef> services{base};
  ASSERT_TRUE(MergeServicesToml(dir / "services.toml", services));
  EXPECT_EQ(services[0].configuration, (std::vector<std::string>{"ioc-db", "site"}));
  EXPECT_EQ(services[1].configuration, std::vector<std::string>{});
  auto back = ServicesFromJson(ServicesToJson(services));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, services);

  auto json = SetServiceOverrides("", "ioc", {"configuration=a-conf, b-conf"});
  ASSERT_TRUE(json) << json.error().message;
  EXPECT_EQ(ApplyOverrides(services[0], *json)->configuration, (std::vector<std::string>{"a-conf", "b-conf"}));
  auto cleared = SetServiceOverrides(*json, "ioc", {"configuration="});
  ASSERT_TRUE(cleared);
  EXPECT_EQ(*ApplyOverrides(services[0], *cleared), services[0]);

  for (const char* bad : {"configuration = [\"../x\"]", "configuration = [\"a\", \"a\"]"}) {
    WriteTestFile(dir / "bad.toml", std::string("[ioc]\ncommand = \"x\"\n") + bad + "\n");
    std::vector<ServiceDef> none;
    auto refused = MergeServicesToml(dir / "bad.toml", none);
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.error().message.find("configuration"), std::string::npos) << refused.error().message;
  }
  auto applied = ApplyOverrides(base, *SetServiceOverrides("", "ioc", {"configuration=Bad/Name"}));
  EXPECT_FALSE(applied);
}

TEST(ServiceDefinition, Signals) {
  EXPECT_EQ(SignalNumber("SIGTERM"), 15);
  EXPECT_EQ(SignalNumber("INT"), 2);
  EXPECT_EQ(SignalNumber("9"), 9);
  EXPECT_EQ(SignalNumber("SIGNOPE"), 0);
}

}  // namespace
}  // namespace wharf
