// `reclm export`: a trained model and its dataset → a Hugging Face directory that serving stacks
// load as a LlamaForCausalLM (DESIGN.md §7, docs/export.md):
//   config.json             LlamaForCausalLM config (dims, rope_theta, rms_norm_eps, token ids)
//   model.safetensors       every tensor of the parameter layout under its HF name, F32 or BF16
//                           (tied models have no lm_head.weight, as HF's tie_word_embeddings)
//   tokenizer.json          the dataset's tokenizer, with the item and attribute tokens
//   generation_config.json  bos / eos / pad token ids
//   item_map.tsv            item_id  token_id  token  title (one line per catalog item)
//   reclm_config.pbtxt      the training config
// LoRA runs (model.lora.rank > 0), per HfExportOptions::lora:
//   merged (the default)    model.safetensors holds W + (alpha/r)·B·A for every adapted projection:
//                           a plain Llama directory, no adapter tensors anywhere
//   peft                    model.safetensors holds the base weights (with the trained new-token
//                           embedding rows), and adapter/ holds PEFT's adapter_config.json and
//                           adapter_model.safetensors ("base_model.model.<name>.lora_A.weight", ...)
// 2D-position models are exported too, but their config.json says "reclm_positions": "2d" and
// explains the rotary rule, which stock Llama loaders do not apply.
//
// Everything is written into OUT.tmp-XXXXXX and renamed to OUT at the end, so a failed export
// leaves no half-written OUT. A non-empty OUT is refused (UserError) unless `force`.
#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>

#include "data/rec_dataset.h"
#include "runtime/config.h"
#include "runtime/dtype.h"
#include "trainer/model.h"

namespace reclm {

enum class LoraExport {
  kAuto,    // merged for a LoRA model, nothing to do otherwise
  kMerged,  // adapters folded into the base weights
  kPeft,    // base model + adapter/ (PEFT files)
};

struct HfExportOptions {
  DType dtype = DType::kBF16;  // kF32 (bit exact) or kBF16 (rounded to nearest even)
  bool force = false;          // replace a non-empty output directory
  LoraExport lora = LoraExport::kAuto;  // kMerged / kPeft on a model without LoRA: UserError
};

// PEFT's adapter_config.json for a LoRA model (peft_type LORA, r, lora_alpha, target_modules,
// task_type CAUSAL_LM, base_model_name_or_path ".." — the export directory above adapter/).
nlohmann::json peft_adapter_config(const ModelDims& dims);

// The config.json object: dims from `dims`, max_position_embeddings from `max_seq_len`, token ids
// from `vocab`, torch_dtype from `dtype` (kF32 or kBF16).
nlohmann::json hf_llama_config(const ModelDims& dims, const VocabLayout& vocab, int64_t max_seq_len,
                               DType dtype);

// Writes the directory described above. `config` is the training config (written as
// reclm_config.pbtxt; model.max_seq_len gives max_position_embeddings). The model's vocabulary
// must cover the dataset's (InternalError otherwise: the run was trained on it). An unwritable or
// non-empty `out_dir` (without force), a dataset whose tokenizer does not load, or a LoRA export
// mode for a model without LoRA is a UserError.
void export_hf(const std::filesystem::path& out_dir, const Model& model, const RecDataset& dataset,
               const Config& config, const HfExportOptions& options);

}  // namespace reclm
