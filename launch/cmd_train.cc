// `reclm train --config X.pbtxt [--set path=value ...]`: pre-train on a token corpus.
#include "data/text_lm_source.h"
#include "launch/commands.h"
#include "runtime/config.h"
#include "trainer/train_loop.h"

namespace reclm::launch {

void register_train_command(CLI::App& app) {
  auto args = std::make_shared<ConfigArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model from a config (CPU backend)");
  add_config_options(cmd, args.get());
  cmd->callback([args] {
    const Config config = load_config(args->path, args->overrides);
    TextLmOptions options;
    options.seq_len = config.data().seq_len();
    options.micro_batch = config.train().micro_batch();
    options.val_fraction = config.data().val_fraction();
    options.seed = config.runtime().seed();
    const TextLmSource source =
        make_text_lm_source(config.data().text_path(), config.data().synthetic_bytes(), options);
    train(config, source);
  });
}

}  // namespace reclm::launch
