// The `reclm` subcommands. Each lives in its own file (cmd_<name>.cc) and registers itself on
// the CLI11 app; main.cc turns exceptions into exit codes (UserError → 2, anything else → 1).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace reclm::launch {

// `--config FILE` and repeatable `--set path=value`, shared by every command that reads a config.
struct ConfigArgs {
  std::string path;
  std::vector<std::string> overrides;
};
void add_config_options(CLI::App* command, ConfigArgs* args);

void register_config_command(CLI::App& app);
void register_train_command(CLI::App& app);
void register_prepare_command(CLI::App& app);
void register_eval_command(CLI::App& app);
void register_recommend_command(CLI::App& app);
void register_info_command(CLI::App& app);
void register_export_command(CLI::App& app);
void register_logits_command(CLI::App& app);

}  // namespace reclm::launch
