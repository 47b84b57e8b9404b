// Service definitions from a publisher's tree and from generations:
// "<services.toml>\n@@@@\n<package.json services>\n@@@@\n<generation services>\n@@@@\n<settings>"
// (settings: `wharf service set` KEY=VALUE lines, or a --service NAME=COMMAND spec).
// What services.toml defines travels as JSON in package.json and must read back the same.
#include "base/strings.h"
#include "fuzz.h"
#include "service/definition.h"

using namespace wharf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::Parts(fuzz::Input(data, size), 4);
  parts.resize(4);
  {
    fuzz::ScratchFolder scratch;
    std::string toml = scratch / "services.toml";
    fuzz::WriteScratchFile(toml, parts[0]);
    std::vector<ServiceDef> services;
    if (MergeServicesToml(toml, services)) {
      auto back = ServicesFromJson(ServicesToJson(services));
      WHARF_FUZZ_CHECK(back && *back == services);
    }
  }
  std::vector<std::string> settings = Split(parts[3], '\n');
  (void)ParseServiceSpec(parts[3]);
  if (auto services = ServicesFromJson(parts[1])) {
    WHARF_FUZZ_CHECK(ServicesFromJson(ServicesToJson(*services)));
    for (const auto& s : *services) {
      (void)ApplyOverrides(s, parts[2]);
      if (auto set = SetServiceOverrides(parts[2], s.name, settings)) (void)ApplyOverrides(s, *set);
      (void)SignalNumber(s.stop_signal);
    }
  }
  return 0;
}
