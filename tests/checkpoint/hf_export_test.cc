// `reclm export` as a library call: what a Hugging Face loader reads back from the directory.
#include "checkpoint/hf_export.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "checkpoint/safetensors.h"
#include "data/item_vocab.h"
#include "runtime/errors.h"
#include "trainer/eval_test_util.h"

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

// Each test's scratch directories, removed when it ends.
class HfExport : public ::testing::Test {
 protected:
  fs::path fresh_dir(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() /
                         ("reclm_hf_export_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    dirs_.push_back(dir);
    return dir;
  }
  void TearDown() override {
    for (const fs::path& dir : dirs_) fs::remove_all(dir);
  }

 private:
  std::vector<fs::path> dirs_;
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
