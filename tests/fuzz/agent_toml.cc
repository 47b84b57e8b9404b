// agent.toml (root's file on the FEC, but written by hand and by provisioning tools):
// read as the agent reads it; flags already given must win over the file.
#include "cli/agent_config.h"
#include "fuzz.h"

using namespace wharf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ScratchFolder scratch;
  std::string path = scratch / "agent.toml";
  fuzz::WriteScratchFile(path, fuzz::Input(data, size));
  AgentArgs args;
  (void)ReadConfigFile(path, "/srv/root", args);
  AgentArgs given;
  given.fec = "fec01";
  given.stores = {"file:///srv/store"};
  given.keep = 2;
  if (ReadConfigFile(path, "/", given))
    WHARF_FUZZ_CHECK(given.fec == "fec01" && given.stores.size() == 1 && given.keep == 2);
  return 0;
}
