// `train.init_from: "hf:DIR"`: every directory reclm cannot represent exactly is refused with a
// message naming the file and the field or tensor, before the model is touched.
#include "checkpoint/hf_import.h"

#include <gtest/gtest.h>

#include "checkpoint/hf_import_fixture.h"
#include "runtime/errors.h"
#include "thrown_message.h"

namespace reclm {
namespace {

using namespace test;  // NOLINT: the shared fixtures of hf_import_fixture.h

TEST_F(HfImport, EveryMissingOrMisshapedTensorIsListedAndTheModelIsUntouched) {
  const RecDataset d = small_dataset();
  write_pretrained(dir_ / "hf", d,
                   {.drop_tensors = {"model.layers.1.mlp.up_proj.weight", "model.norm.weight"},
                    .flatten_tensor = "model.layers.0.self_attn.q_proj.weight"});
  Model model(imported_dims(dir_ / "hf", d.vocab.vocab_size), 8);
  init_weights(model, 3, 0.3f);
  const std::vector<float> before(model.param_data(),
                                  model.param_data() + model.layout.total_floats());
  const std::string message =
      thrown_message<UserError>([&] { import_hf_weights(dir_ / "hf", model, &d); });
  EXPECT_NE(message.find("model.safetensors.index.json (2 shards): the pretrained weights do not "
                         "fit this model (3 problems)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("model.layers.1.mlp.up_proj.weight: missing"), std::string::npos);
  EXPECT_NE(message.find("model.norm.weight: missing"), std::string::npos);
  EXPECT_NE(message.find("model.layers.0.self_attn.q_proj.weight: shape [1024] in the file, [32, "
                         "32] in the model"),
            std::string::npos)
      << message;
  EXPECT_TRUE(std::equal(before.begin(), before.end(), model.param_data()));
}

TEST_F(HfImport, ADatasetOfAnotherTokenizerIsRefused) {
  const RecDataset d = small_dataset();
  const int drop = d.vocab.text_size / 20;  // 5% missing
  write_pretrained(dir_ / "hf", d, {.drop_text_tokens = drop});
  Model model(imported_dims(dir_ / "hf", d.vocab.vocab_size), 8);
  const std::string message =
      thrown_message<UserError>([&] { import_hf_weights(dir_ / "hf", model, &d); });
  EXPECT_NE(message.find((dir_ / "hf" / "tokenizer.json").string()), std::string::npos) << message;
  EXPECT_NE(message.find(fmt::format("{} of the {} text tokens", drop, d.vocab.text_size)),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("prepared with a different tokenizer"), std::string::npos) << message;
  EXPECT_NE(message.find("--tokenizer " + (dir_ / "hf").string()), std::string::npos) << message;
}

TEST_F(HfImport, AnIndexNamingAMissingShardIsRefused) {
  const RecDataset d = small_dataset();
  write_pretrained(dir_ / "hf", d, {.shard_override = "model-00003-of-00002.safetensors"});
  Model model(imported_dims(dir_ / "hf", d.vocab.vocab_size), 8);
  const std::string message =
      thrown_message<UserError>([&] { import_hf_weights(dir_ / "hf", model, &d); });
  EXPECT_NE(message.find((dir_ / "hf" / "model.safetensors.index.json").string()),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("names shard model-00003-of-00002.safetensors, which does not exist"),
            std::string::npos)
      << message;
  write_pretrained(dir_ / "escape", d, {.shard_override = "../model-00002-of-00002.safetensors"});
  EXPECT_NE(thrown_message<UserError>([&] { import_hf_weights(dir_ / "escape", model, &d); })
                .find("is not a file name in"),
            std::string::npos);
}

TEST_F(HfImport, ConfigsWithOtherMathAreRefusedNamingTheField) {
  const RecDataset d = small_dataset();
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}}}, "field rope_scaling"},
      {{{"hidden_act", "gelu"}}, "field hidden_act: \"gelu\""},
      {{{"attention_bias", true}}, "field attention_bias"},
      {{{"mlp_bias", true}}, "field mlp_bias"},
      {{{"head_dim", 16}}, "field head_dim: 16 differs"},
      {{{"model_type", "qwen2"}, {"architectures", {"Qwen2ForCausalLM"}}}, "field model_type"},
      {{{"model_type", "gpt2"}}, "field model_type: \"gpt2\""},
      {{{"architectures", {"LlamaForSequenceClassification"}}}, "field architectures"},
      {{{"model_type", "mistral"}, {"sliding_window", 128}}, "field sliding_window: 128"},
      {{{"num_attention_heads", 5}}, "field hidden_size: 32 is not divisible"},
      {{{"intermediate_size", nullptr}}, "field intermediate_size: missing"},
      {{{"reclm_positions", "3d"}}, "field reclm_positions"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const fs::path dir = dir_ / fmt::format("case{}", i);
    write_pretrained(dir, d, {.config_patch = cases[i].first});
    config::ModelConfig model;  // max_seq_len 256
    const std::string message =
        thrown_message<UserError>([&] { apply_hf_architecture(dir, &model); });
    EXPECT_NE(message.find((dir / "config.json").string()), std::string::npos) << message;
    EXPECT_NE(message.find(cases[i].second), std::string::npos) << message;
  }
}

// Fields config.json may omit take Hugging Face's defaults: LlamaConfig's for a Llama model;
// for Mistral its own kv-head default, and its default window (4096) exceeds max_seq_len 256.
TEST_F(HfImport, HuggingFaceDefaultsFillOmittedFields) {
  const RecDataset d = small_dataset();
  const json omitted = {{"num_key_value_heads", nullptr},
                        {"rms_norm_eps", nullptr},
                        {"rope_theta", nullptr},
                        {"tie_word_embeddings", nullptr}};
  write_pretrained(dir_ / "llama", d, {.config_patch = omitted});
  config::ModelConfig llama;
  llama.set_tie_embeddings(true);
  llama.set_rope_theta(500000);
  apply_hf_architecture(dir_ / "llama", &llama);
  EXPECT_EQ(llama.d_model(), 32);
  EXPECT_EQ(llama.n_kv_heads(), 4) << "num_key_value_heads defaults to num_attention_heads";
  EXPECT_FLOAT_EQ(llama.norm_eps(), 1e-6f) << "LlamaConfig's default rms_norm_eps";
  EXPECT_FLOAT_EQ(llama.rope_theta(), 10000.0f);
  EXPECT_FALSE(llama.tie_embeddings()) << "tie_word_embeddings defaults to false";

  json mistral = omitted;
  mistral.update({{"model_type", "mistral"},
                  {"architectures", {"MistralForCausalLM"}},
                  {"num_attention_heads", 8}});
  write_pretrained(dir_ / "mistral", d, {.config_patch = mistral});
  config::ModelConfig model;
  apply_hf_architecture(dir_ / "mistral", &model);
  EXPECT_EQ(model.n_heads(), 8);
  EXPECT_EQ(model.n_kv_heads(), 8) << "MistralConfig's default num_key_value_heads";
}

}  // namespace
}  // namespace reclm
