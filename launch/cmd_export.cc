// `reclm export --run RUN_DIR --out DIR [--dtype bf16|fp32] [--lora merged|peft] [--force]`: a
// trained run → a Hugging Face directory for serving (checkpoint/hf_export.h, docs/export.md).
// `--format hdf5 --out FILE.h5` writes the raw fp32 tensors instead (trainer/weights_file.h
// format: one dataset per tensor, the config and dims as attributes).
#include <memory>
#include <string>

#include <filesystem>

#include "checkpoint/hf_export.h"
#include "launch/commands.h"
#include "launch/rec_options.h"
#include "runtime/errors.h"
#include "runtime/logging.h"
#include "trainer/lora.h"
#include "trainer/weights_file.h"

namespace reclm::launch {
namespace {

struct ExportArgs {
  std::string run_dir;
  std::string out;
  std::string dtype = "bf16";
  std::string lora;  // "" = merged for a LoRA run
  std::string format = "hf";
  bool force = false;
};

// The raw tensors as one HDF5 file; a LoRA run's adapters are kept as they are unless
// `--lora merged` asks for them folded into the weights.
void export_hdf5(const ExportArgs& args, const TrainedRun& run) {
  RECLM_USER_CHECK(args.dtype == "fp32" || args.dtype == "bf16",
                   "--dtype: \"{}\" is not a dtype (bf16, fp32)", args.dtype);
  RECLM_USER_CHECK(args.lora != "peft", "--lora peft: PEFT adapters are written by --format hf");
  const std::filesystem::path out = args.out;
  RECLM_USER_CHECK(args.force || !std::filesystem::exists(out),
                   "--out {}: exists (use --force to replace it)", out.string());
  if (args.lora == "merged") {
    RECLM_USER_CHECK(run.model->dims.has_lora(), "--lora merged: {} is not a LoRA run", args.run_dir);
    const ModelDims dims = without_lora(run.model->dims);
    const std::vector<float> merged = merge_lora(*run.model);
    Config merged_config = run.config;  // describes the merged tensors: no adapters any more
    merged_config.mutable_model()->mutable_lora()->set_rank(0);
    save_weights(out, dims, ParamLayout(dims), merged.data(), config_to_text(merged_config));
  } else {
    save_weights(out, *run.model, config_to_text(run.config));
  }
  if (args.dtype != "fp32") log_info("--format hdf5 stores the fp32 master weights (raw tensors)");
  log_info("exported {} as raw tensors to {}", args.run_dir, out.string());
}

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
  RECLM_USER_CHECK(args.format == "hf" || args.format == "hdf5",
                   "--format: \"{}\" is not an export format (hf, hdf5)", args.format);
  const TrainedRun run = load_trained_run(args.run_dir, {});
  if (args.format == "hdf5") return export_hdf5(args, run);
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
  cmd->add_option("--format", args->format,
                  "hf (default): a Hugging Face directory; hdf5: the raw fp32 tensors as one .h5 "
                  "file (--out names the file)");
  cmd->add_flag("--force", args->force, "Replace a non-empty output directory");
  cmd->callback([args] { run_export(*args); });
}

}  // namespace reclm::launch
