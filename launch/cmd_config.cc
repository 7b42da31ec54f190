// `reclm config`: print the effective configuration — the file (or the defaults), then every
// --set in order, with every default and derived value filled in — exactly what `reclm train`
// would run with. The output is itself a valid config file.
#include <cstdio>
#include <memory>

#include "launch/commands.h"
#include "runtime/config.h"

namespace reclm::launch {

void register_config_command(CLI::App& app) {
  CLI::App* command = app.add_subcommand("config", "Print the effective configuration");
  // Owned by the callback: CLI11 keeps the command (and the callback) alive as long as `app`.
  auto args = std::make_shared<ConfigArgs>();
  add_config_options(command, args.get());
  command->callback([args] {
    const Config config = load_config(args->path, args->overrides);
    std::fputs(config_to_text(config).c_str(), stdout);
  });
}

}  // namespace reclm::launch
