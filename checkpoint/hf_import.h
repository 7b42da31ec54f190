// `train.init_from: "hf:DIR"`: start from a pretrained Hugging Face Llama-architecture model
// (docs/pretrained.md). The inverse of `reclm export` (checkpoint/hf_export.h): our parameter
// names are the Hugging Face Llama names, so weights are a copy; the work is checking that the
// directory describes a network we compute exactly, and extending the vocabulary with the
// dataset's specials, items and attributes (checkpoint/hf_vocab_rows.h).
//
// Order in `reclm train`: load the config, apply_hf_architecture(DIR, model config), build the
// model (random init), then import_hf_weights(DIR, model, dataset) before the first step.
#pragma once

#include <filesystem>

#include "data/rec_dataset.h"
#include "runtime/config.h"
#include "trainer/model.h"

namespace reclm {

// Reads DIR/config.json and sets the architecture fields of `model`: d_model (hidden_size),
// n_layers (num_hidden_layers), n_heads (num_attention_heads), n_kv_heads (num_key_value_heads,
// default num_attention_heads; Mistral's 8), d_ff (intermediate_size), rope_theta (default
// 10000), norm_eps (rms_norm_eps, default 1e-6), tie_embeddings (tie_word_embeddings, default
// false as in HF Llama), positions (1D; 2D when our export's "reclm_positions": "2d" is present).
// Other fields (vocab_size, max_seq_len, lora, dropout) are left to the config. Logs each field
// it sets, and where it came from.
//
// Refused (UserError naming DIR/config.json and the field) because the math would differ:
// model_type other than "llama" or "mistral" ("qwen2" has q/k/v biases), an architectures entry
// other than LlamaForCausalLM / MistralForCausalLM, a Mistral sliding_window shorter than
// model.max_seq_len, hidden_act other than silu, attention_bias or mlp_bias true, rope_scaling
// (or a non-default rope_parameters.rope_type), head_dim != hidden_size / num_attention_heads.
void apply_hf_architecture(const std::filesystem::path& dir, config::ModelConfig* model);

// Copies the weights of DIR (model.safetensors, or model.safetensors.index.json + shards; F32,
// BF16, F16 or F64 → fp32) into `model`. Every base tensor of the layout must be in the files
// with its shape — all missing / mis-shaped / non-float tensors are listed in one UserError
// before anything is written; lm_head.weight is not needed (and ignored) when the model is tied.
// LoRA tensors of the layout keep their initialisation. File tensors the layout does not use
// (rotary_emb.inv_freq, …) are ignored with a log line.
//
// Embedding rows (embed_tokens and an untied lm_head): with a dataset, by token string through
// DIR/tokenizer.json, new rows initialised from means (hf_vocab_rows.h; more than 1% of the text
// tokens missing is a UserError); the pretrained matrix may have any number of rows. Without a
// dataset (text LM) the matrices must have exactly the model's vocabulary size.
void import_hf_weights(const std::filesystem::path& dir, Model& model, const RecDataset* dataset);

}  // namespace reclm
