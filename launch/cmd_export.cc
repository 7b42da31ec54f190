// `reclm export --run RUN_DIR --out DIR [--dtype bf16|fp32] [--lora merged|peft] [--force]`: a
// trained run → a Hugging Face directory for serving (checkpoint/hf_export.h, docs/export.md).
#include <memory>
#include <string>

#include "checkpoint/hf_export.h"
#include "launch/commands.h"
#include "launch/rec_options.h"
#include "runtime/errors.h"
#include "runtime/logging.h"
#include "trainer/lora.h"

namespace reclm::launch {
namespace {

struct ExportArgs {
  std::string run_dir;
  std::string out;
  std::string dtype = "bf16";
  std::string lora;  // "" = merged for a LoRA run
  bool force = false;
};

void run_export(const ExportArgs& args) {
  RECLM_USER_CHECK(args.dtype == "bf16" || args.dtype == "fp32",
                   "--dtype: \"{}\" is not a dtype (bf16, fp32)", args.dtype);
  HfExportOptions options;
  options.dtype = args.dtype == "fp32" ? DType::kF32 : DType::kBF16;
  options.force = args.force;
  RECLM_USER_CHECK(args.lora.empty() || args.lora == "merged" || args.lora == "peft",
                   "--lora: \"{}\" is not a LoRA export mode (merged, peft)", args.lora);
  if (args.lora == "merged") options.lora = LoraExport::kMerged;
  if (args.lora == "peft") options.lora = LoraExport::kPeft;
  const TrainedRun run = load_trained_run(args.run_dir, {});
  export_hf(args.out, *run.model, run.dataset, run.config, options);
  const bool peft = options.lora == LoraExport::kPeft;
  const ParamLayout exported(peft ? run.model->dims : without_lora(run.model->dims));
  log_info("exported {} ({} parameters, {}{}) to {}", args.run_dir, exported.num_parameters(),
           args.dtype,
           !run.model->dims.has_lora() ? "" : peft ? ", LoRA as PEFT adapter/" : ", LoRA merged",
           args.out);
  if (run.model->dims.positions_2d)
    log_warn("2D positions: stock Llama loaders will not apply this model's rotary rule "
             "(see reclm_rope_2d in config.json)");
}

}  // namespace

void register_export_command(CLI::App& app) {
  auto args = std::make_shared<ExportArgs>();
  CLI::App* cmd = app.add_subcommand(
      "export", "Write a trained run as a Hugging Face directory (config.json, model.safetensors, "
                "tokenizer.json, item_map.tsv)");
  cmd->add_option("--run", args->run_dir, "Training run directory (config.pbtxt + model.h5)")->required();
  cmd->add_option("--out", args->out, "Output directory (created; must be empty unless --force)")
      ->required();
  cmd->add_option("--dtype", args->dtype, "Weights dtype: bf16 (default) or fp32");
  cmd->add_option("--lora", args->lora,
                  "LoRA runs: merged (default; adapters folded into the weights) or peft (base "
                  "model + adapter/ with PEFT adapter files)");
  cmd->add_flag("--force", args->force, "Replace a non-empty output directory");
  cmd->callback([args] { run_export(*args); });
}

}  // namespace reclm::launch
