// reclm — one binary, one subcommand per job (DESIGN.md §3).
// Exit codes: 0 success; 2 bad input (message names file/line/field); 1 internal error.
#include <csignal>
#include <cstdio>
#include <exception>

#include "kernels/cpu/blas_kernels.h"
#include "launch/commands.h"
#include "runtime/errors.h"

namespace reclm::launch {

void add_config_options(CLI::App* command, ConfigArgs* args) {
  command->add_option("--config", args->path, "Config file (protobuf text format, .pbtxt)");
  command->add_option("--set", args->overrides,
                      "Override a config field by path, e.g. --set train.lr=3e-4 (repeatable)")
      ->take_all()
      ->allow_extra_args(false);
}

}  // namespace reclm::launch

int main(int argc, char** argv) {
  // Before anything else (no thread, no MPI connection yet): GEMM kernels that fit this CPU.
  reclm::ops::restart_with_fitting_blas_kernels(argv);
  // A write past the file-size limit (ulimit -f, a quota) then fails with EFBIG and is reported
  // like a full disk (naming the file, exit 2) instead of killing the process mid-save.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"reclm: train LLM-based recommenders on CPU, GPU and clusters"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "reclm 0.1.0");
  reclm::launch::register_prepare_command(app);
  reclm::launch::register_train_command(app);
  reclm::launch::register_eval_command(app);
  reclm::launch::register_recommend_command(app);
  reclm::launch::register_info_command(app);
  reclm::launch::register_export_command(app);
  reclm::launch::register_logits_command(app);
  reclm::launch::register_config_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return reclm::kExitUserError;
  } catch (const reclm::UserError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return reclm::kExitUserError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return reclm::kExitInternal;
  }
  return reclm::kExitOk;
}
