// Dev versions from the command line (src/agent/dev.h): `wharf dev-deploy` packs a tree as
// version dev and installs it on a FEC, over ssh or into a FEC folder here;
// `wharf-agent install-dev` takes the stream dev-deploy sends on stdin; `wharf-agent
// drop-dev` goes back to the generation's version. Exit codes as the tools' own: 0 done,
// 1 failed or refused (the FEC stays as it was), 2 usage error.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "service/definition.h"

namespace wharf {

struct DevDeployArgs {
  std::string dir;     // the tree that installs under `prefix`
  std::string name;
  std::string prefix;
  std::string fec;     // a FEC's host name: install over ssh; or
  std::string root;    // a FEC folder on this machine: install in this process
  std::string ssh;     // the ssh command, split at spaces; empty: WHARF_SSH, else "ssh"
  std::string remote_agent = "wharf-agent";  // what runs on the FEC (a shell word list: "sudo wharf-agent")
  std::string remote_root;                   // --root of the agent on the FEC
  std::vector<std::string> service_specs;    // NAME=COMMAND ARGS, as `wharf pack --service`
  int level = 3;       // zstd level: a dev build is packed often and sent once
  bool dry_run = false;
  bool json = false;
};

int RunDevDeploy(const DevDeployArgs& args);
/// Reads the dev stream (docs/formats.md) on stdin and installs it under `root`.
int RunInstallDev(const std::string& root, const std::string& name, bool dry_run, bool json);
int RunDropDev(const std::string& root, const std::string& name, bool dry_run, bool json);

}  // namespace wharf
