// `reclm export` as a library call: what a Hugging Face loader reads back from the directory.
#include "checkpoint/hf_export.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "checkpoint/safetensors.h"
#include "data/item_vocab.h"
#include "runtime/errors.h"
#include "scratch_dir.h"
#include "trainer/eval_test_util.h"
#include "trainer/lora.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// Four items (one title with a tab and a newline, one untitled), two attributes, a learned BPE.
RecDataset tiny_dataset() {
  RecDataset d;
  d.source = "tiny.tsv";
  d.items.keys = {"B001", "B002", "B003", "B004"};
  d.items.titles = {"Lumina gentle serum 30 ml", "Verde\tmatte\nlipstick", "",
                    "Lumina hydrating serum refill"};
  d.items.attribute_names = {"category:serum", "brand:Lumina"};
  d.items.attr_offsets = {0, 2, 2, 2, 4};
  d.items.attr_ids = {0, 1, 0, 1};
  d.users.keys = {"u1", "u2"};
  d.users.offsets = {0, 3, 6};
  d.users.items = {0, 1, 3, 1, 2, 3};
  VocabOptions options;
  options.learned_vocab_size = 260;
  build_item_vocabulary(d, options);
  return d;
}

Model make_model(const RecDataset& d, bool tied, bool positions_2d) {
  ModelDims dims = test::tiny_dims(d.vocab.vocab_size, positions_2d);
  dims.tied = tied;
  Model model(dims, 16);
  init_weights(model, 7, 0.3f);
  return model;
}

// A LoRA model (rank 4 on q_proj, v_proj, down_proj) whose adapters look trained (B != 0).
Model make_lora_model(const RecDataset& d) {
  ModelDims dims = test::tiny_dims(d.vocab.vocab_size, false);
  dims.lora_rank = 4;
  dims.lora_alpha = 8.0f;
  dims.lora_targets = (1u << 0) | (1u << 2) | (1u << 6);
  Model model(dims, 16);
  init_weights(model, 7, 0.3f);
  for (const ParamEntry& e : lora_adapter_entries(model)) {
    for (int64_t j = 0; j < e.numel; ++j)
      model.param_data()[e.offset + j] = 0.01f * static_cast<float>((j * 7919 + e.offset) % 41 - 20);
  }
  return model;
}

// Every tensor of `file` equals `want` (name → floats) bit for bit, and it holds nothing else.
void expect_f32_tensors(const SafetensorsFile& file,
                        const std::vector<std::pair<std::string, std::vector<float>>>& want) {
  std::vector<std::string> names;
  for (const auto& [name, values] : want) {
    names.push_back(name);
    ASSERT_TRUE(file.contains(name)) << name;
    EXPECT_EQ(file.dtype(name), "F32") << name;
    EXPECT_EQ(file.read_f32(name), values) << name;
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(file.names(), names);
}

Config make_config() {
  Config config;
  config.mutable_model()->set_max_seq_len(96);
  config.mutable_train()->set_steps(5);
  return config;
}

HfExportOptions with_dtype(DType dtype) {
  HfExportOptions options;
  options.dtype = dtype;
  return options;
}

// Each test's scratch directories: empty folders under the test's own dir_, removed when it ends.
class HfExport : public ScratchDirTest {
 protected:
  fs::path fresh_dir(const std::string& name) {
    fs::create_directories(dir_ / name);
    return dir_ / name;
  }
};

TEST_F(HfExport, Fp32WeightsAreBitExactUnderLayoutNames) {
  const RecDataset d = tiny_dataset();
  const Model model = make_model(d, /*tied=*/false, false);
  const fs::path out = fresh_dir("fp32") / "hf";
  export_hf(out, model, d, make_config(), with_dtype(DType::kF32));

  const SafetensorsFile file = SafetensorsFile::open(out / "model.safetensors");
  std::vector<std::string> expected;
  for (const ParamEntry& p : model.layout.entries()) expected.push_back(p.name);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(file.names(), expected);
  EXPECT_TRUE(file.contains("lm_head.weight")) << "untied head is its own tensor";
  for (const ParamEntry& p : model.layout.entries()) {
    EXPECT_EQ(file.shape(p.name), p.shape) << p.name;
    EXPECT_EQ(file.dtype(p.name), "F32") << p.name;
    const std::vector<uint8_t> bytes = file.read_bytes(p.name);
    ASSERT_EQ(bytes.size(), static_cast<size_t>(p.numel) * 4) << p.name;
    EXPECT_EQ(std::memcmp(bytes.data(), model.param_data() + p.offset, bytes.size()), 0) << p.name;
  }
  EXPECT_EQ(nlohmann::json::parse(read_text(out / "config.json"))["torch_dtype"], "float32");
}

TEST_F(HfExport, Bf16WeightsAreRoundedAndTiedHeadIsOmitted) {
  const RecDataset d = tiny_dataset();
  const Model model = make_model(d, /*tied=*/true, false);
  const fs::path out = fresh_dir("bf16") / "hf";
  export_hf(out, model, d, make_config(), HfExportOptions{});  // default: bf16

  const SafetensorsFile file = SafetensorsFile::open(out / "model.safetensors");
  EXPECT_FALSE(file.contains("lm_head.weight"));
  EXPECT_EQ(file.names().size(), model.layout.entries().size());
  for (const ParamEntry& p : model.layout.entries()) {
    EXPECT_EQ(file.dtype(p.name), "BF16") << p.name;
    const std::vector<float> values = file.read_f32(p.name);
    ASSERT_EQ(values.size(), static_cast<size_t>(p.numel));
    for (int64_t i = 0; i < p.numel; ++i) {
      const float want = bf16_to_f32(f32_to_bf16(model.param_data()[p.offset + i]));
      ASSERT_EQ(values[i], want) << p.name << "[" << i << "]";
    }
  }
  const auto config = nlohmann::json::parse(read_text(out / "config.json"));
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_EQ(config["tie_word_embeddings"], true);
}

TEST_F(HfExport, ConfigJsonDescribesTheModel) {
  const RecDataset d = tiny_dataset();
  const Model model = make_model(d, false, false);
  const fs::path out = fresh_dir("config") / "hf";
  export_hf(out, model, d, make_config(), HfExportOptions{});
  const auto c = nlohmann::json::parse(read_text(out / "config.json"));
  EXPECT_EQ(c["architectures"], nlohmann::json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(c["model_type"], "llama");
  EXPECT_EQ(c["vocab_size"], d.vocab.vocab_size);
  EXPECT_EQ(c["hidden_size"], 32);
  EXPECT_EQ(c["intermediate_size"], 48);
  EXPECT_EQ(c["num_hidden_layers"], 2);
  EXPECT_EQ(c["num_attention_heads"], 4);
  EXPECT_EQ(c["num_key_value_heads"], 2);
  EXPECT_EQ(c["max_position_embeddings"], 96);
  EXPECT_EQ(c["rms_norm_eps"], 1e-5);
  EXPECT_EQ(c["rope_theta"], 10000.0);
  EXPECT_EQ(c["tie_word_embeddings"], false);
  EXPECT_EQ(c["hidden_act"], "silu");
  EXPECT_EQ(c["bos_token_id"], d.vocab.bos());
  EXPECT_EQ(c["eos_token_id"], d.vocab.eos());
  EXPECT_EQ(c["pad_token_id"], d.vocab.pad());
  EXPECT_FALSE(c.contains("reclm_positions")) << "1D models are plain Llama";
  const auto g = nlohmann::json::parse(read_text(out / "generation_config.json"));
  EXPECT_EQ(g["bos_token_id"], d.vocab.bos());
  EXPECT_EQ(g["eos_token_id"], d.vocab.eos());
  EXPECT_EQ(g["pad_token_id"], d.vocab.pad());
}

TEST_F(HfExport, TwoDimensionalPositionsAreMarked) {
  const RecDataset d = tiny_dataset();
  const Model model = make_model(d, true, /*positions_2d=*/true);
  const fs::path out = fresh_dir("pos2d") / "hf";
  export_hf(out, model, d, make_config(), HfExportOptions{});
  const auto c = nlohmann::json::parse(read_text(out / "config.json"));
  EXPECT_EQ(c["reclm_positions"], "2d");
  const std::string note = c["reclm_rope_2d"];
  EXPECT_NE(note.find("dims [0, 4) rotate by the inter position"), std::string::npos) << note;
  EXPECT_NE(note.find("dims [4, 8) by the intra position"), std::string::npos) << note;
}

TEST_F(HfExport, TokenizerItemMapAndConfigTextAreWritten) {
  const RecDataset d = tiny_dataset();
  const Model model = make_model(d, true, false);
  const Config config = make_config();
  const fs::path out = fresh_dir("files") / "hf";
  export_hf(out, model, d, config, HfExportOptions{});
  EXPECT_EQ(read_text(out / "tokenizer.json"), d.tokenizer_json);
  const int32_t first = d.vocab.items.first;
  const std::string want = "item_id\ttoken_id\ttoken\ttitle\n" +
                           fmt::format("B001\t{}\t<item_0>\tLumina gentle serum 30 ml\n", first) +
                           fmt::format("B002\t{}\t<item_1>\tVerde matte lipstick\n", first + 1) +
                           fmt::format("B003\t{}\t<item_2>\t\n", first + 2) +
                           fmt::format("B004\t{}\t<item_3>\tLumina hydrating serum refill\n", first + 3);
  EXPECT_EQ(read_text(out / "item_map.tsv"), want);
  const Config back = parse_config_text(read_text(out / "reclm_config.pbtxt"), "reclm_config.pbtxt");
  EXPECT_EQ(back.model().max_seq_len(), 96);
  EXPECT_EQ(back.train().steps(), 5);
}

TEST_F(HfExport, LoraRunExportsMergedWeightsByDefault) {
  const RecDataset d = tiny_dataset();
  const Model model = make_lora_model(d);
  const fs::path out = fresh_dir("lora_merged") / "hf";
  export_hf(out, model, d, make_config(), with_dtype(DType::kF32));

  const std::vector<float> merged = merge_lora(model);
  const ParamLayout base(without_lora(model.dims));
  std::vector<std::pair<std::string, std::vector<float>>> want;
  for (const ParamEntry& p : base.entries())
    want.emplace_back(p.name, std::vector<float>(merged.data() + p.offset, merged.data() + p.offset + p.numel));
  expect_f32_tensors(SafetensorsFile::open(out / "model.safetensors"), want);
  // Merging changed the adapted projections (the file is not just the base weights).
  const ParamEntry& q = model.layout.find("model.layers.0.self_attn.q_proj.weight");
  EXPECT_NE(want[2].second, std::vector<float>(model.param_data() + q.offset,
                                               model.param_data() + q.offset + q.numel));
  EXPECT_FALSE(fs::exists(out / "adapter"));
  const auto c = nlohmann::json::parse(read_text(out / "config.json"));
  EXPECT_EQ(c["architectures"], nlohmann::json::array({"LlamaForCausalLM"}));

  HfExportOptions explicit_merged = with_dtype(DType::kF32);
  explicit_merged.lora = LoraExport::kMerged;
  const fs::path out2 = fresh_dir("lora_merged2") / "hf";
  export_hf(out2, model, d, make_config(), explicit_merged);
  EXPECT_EQ(read_text(out2 / "model.safetensors"), read_text(out / "model.safetensors"));
}

TEST_F(HfExport, LoraPeftExportWritesBaseModelAndAdapterFiles) {
  const RecDataset d = tiny_dataset();
  const Model model = make_lora_model(d);
  const fs::path out = fresh_dir("lora_peft") / "hf";
  HfExportOptions options = with_dtype(DType::kF32);
  options.lora = LoraExport::kPeft;
  export_hf(out, model, d, make_config(), options);

  std::vector<std::pair<std::string, std::vector<float>>> base, adapters;
  for (const ParamEntry& p : model.layout.entries()) {
    std::vector<float> values(model.param_data() + p.offset, model.param_data() + p.offset + p.numel);
    if (p.kind == ParamKind::kLora)
      adapters.emplace_back("base_model.model." + p.name, std::move(values));
    else
      base.emplace_back(p.name, std::move(values));
  }
  ASSERT_EQ(adapters.size(), 2u * 3u * 2u);  // layers × targets × (A, B)
  expect_f32_tensors(SafetensorsFile::open(out / "model.safetensors"), base);
  const SafetensorsFile adapter_file = SafetensorsFile::open(out / "adapter" / "adapter_model.safetensors");
  expect_f32_tensors(adapter_file, adapters);
  EXPECT_EQ(adapter_file.shape("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"),
            (std::vector<int64_t>{4, 48}));
  EXPECT_EQ(adapter_file.shape("base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"),
            (std::vector<int64_t>{32, 4}));

  const auto a = nlohmann::json::parse(read_text(out / "adapter" / "adapter_config.json"));
  EXPECT_EQ(a["peft_type"], "LORA");
  EXPECT_EQ(a["task_type"], "CAUSAL_LM");
  EXPECT_EQ(a["r"], 4);
  EXPECT_EQ(a["lora_alpha"], 8.0);
  EXPECT_EQ(a["target_modules"], nlohmann::json::array({"q_proj", "v_proj", "down_proj"}));
  EXPECT_EQ(a["bias"], "none");
  EXPECT_EQ(a["lora_dropout"], 0.0);
  EXPECT_EQ(a["fan_in_fan_out"], false);
  EXPECT_EQ(a["base_model_name_or_path"], "..");
}

TEST_F(HfExport, LoraModeOnARunWithoutLoraIsRefused) {
  const RecDataset d = tiny_dataset();
  const Model model = make_model(d, true, false);
  const fs::path parent = fresh_dir("lora_none");
  for (const LoraExport mode : {LoraExport::kMerged, LoraExport::kPeft}) {
    HfExportOptions options;
    options.lora = mode;
    try {
      export_hf(parent / "hf", model, d, make_config(), options);
      ADD_FAILURE() << "no UserError";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("no LoRA adapters"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(parent / "hf"));
  }
}

// No OUT.tmp-* sibling may be left behind, whatever happened.
void expect_no_temp_dirs(const fs::path& parent) {
  for (const auto& entry : fs::directory_iterator(parent))
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
}

TEST_F(HfExport, NonEmptyOutputIsRefusedUnlessForced) {
  const RecDataset d = tiny_dataset();
  const Model model = make_model(d, true, false);
  const fs::path parent = fresh_dir("force");
  const fs::path out = parent / "hf";
  fs::create_directories(out);  // an existing empty directory is fine
  export_hf(out, model, d, make_config(), HfExportOptions{});
  std::ofstream(out / "stale.txt") << "old";
  EXPECT_THROW(export_hf(out, model, d, make_config(), HfExportOptions{}), UserError);
  EXPECT_TRUE(fs::exists(out / "stale.txt")) << "a refused export must not touch OUT";
  HfExportOptions force;
  force.force = true;
  export_hf(out, model, d, make_config(), force);
  EXPECT_FALSE(fs::exists(out / "stale.txt")) << "--force replaces the directory";
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  fs::remove_all(out);
  std::ofstream(out) << "a file";
  EXPECT_THROW(export_hf(out, model, d, make_config(), force), UserError);
  expect_no_temp_dirs(parent);
}

TEST_F(HfExport, FailedExportLeavesNothing) {
  RecDataset d = tiny_dataset();
  const Model model = make_model(d, true, false);
  d.tokenizer_json += " ";  // no longer matches its fingerprint: dataset_tokenizer refuses it
  const fs::path parent = fresh_dir("failed");
  EXPECT_THROW(export_hf(parent / "hf", model, d, make_config(), HfExportOptions{}), UserError);
  EXPECT_FALSE(fs::exists(parent / "hf"));
  expect_no_temp_dirs(parent);
}

}  // namespace
}  // namespace reclm
