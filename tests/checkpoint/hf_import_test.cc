// `train.init_from: "hf:DIR"` as library calls: an export imports back bit for bit, and a
// text-only pretrained model gets its rows by token string and its new rows from means.
#include "checkpoint/hf_import.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "checkpoint/hf_export.h"
#include "checkpoint/hf_import_fixture.h"
#include "runtime/errors.h"
#include "shared_data.h"
#include "thrown_message.h"

namespace reclm {
namespace {

using namespace test;  // NOLINT: the shared fixtures of hf_import_fixture.h

// One causal segment of random tokens.
Batch random_batch(int64_t vocab, int n) {
  std::mt19937 gen(5);
  Batch b;
  for (int i = 0; i < n; ++i) {
    b.tokens.push_back(static_cast<int32_t>(gen() % vocab));
    b.targets.push_back(0);
    b.loss_weights.push_back(0.0f);
    b.pos_inter.push_back(i);
  }
  b.cu_seqlens = {0, n};
  return b;
}

// ---- export → import -----------------------------------------------------------------------

void expect_round_trip(const fs::path& out, bool tied, bool positions_2d, DType dtype) {
  const RecDataset d = small_dataset();
  const ModelDims dims = dims_for(d.vocab.vocab_size, tied, positions_2d);
  Model original(dims, 32);
  init_weights(original, 7, 0.3f);
  Config config;
  config.mutable_model()->set_max_seq_len(64);
  HfExportOptions options;
  options.dtype = dtype;
  export_hf(out, original, d, config, options);

  const ModelDims back = imported_dims(out, d.vocab.vocab_size);
  EXPECT_EQ(back.d_model, dims.d_model);
  EXPECT_EQ(back.n_layers, dims.n_layers);
  EXPECT_EQ(back.n_heads, dims.n_heads);
  EXPECT_EQ(back.n_kv_heads, dims.n_kv_heads);
  EXPECT_EQ(back.head_dim, dims.head_dim);
  EXPECT_EQ(back.d_ff, dims.d_ff);
  EXPECT_EQ(back.tied, tied);
  EXPECT_EQ(back.positions_2d, positions_2d);
  EXPECT_EQ(back.rope_theta, dims.rope_theta);
  EXPECT_EQ(back.norm_eps, dims.norm_eps);

  Model imported(back, 32);
  init_weights(imported, 99, 0.3f);  // different values everywhere before the import
  import_hf_weights(out, imported, &d);
  ASSERT_EQ(imported.layout.entries().size(), original.layout.entries().size());
  for (const ParamEntry& e : original.layout.entries()) {
    const std::span<const float> want = tensor(original, e.name), got = tensor(imported, e.name);
    for (size_t i = 0; i < want.size(); ++i) {
      const float expected =
          dtype == DType::kF32 ? want[i] : bf16_to_f32(f32_to_bf16(want[i]));
      ASSERT_EQ(std::memcmp(&got[i], &expected, sizeof(float)), 0) << e.name << "[" << i << "]";
    }
  }
  if (dtype != DType::kF32) return;
  const Batch batch = random_batch(dims.vocab, 24);
  forward_hidden(original, batch);
  forward_hidden(imported, batch);
  EXPECT_EQ(std::memcmp(original.acts.final_normed, imported.acts.final_normed,
                        sizeof(float) * batch.n_tokens() * dims.d_model),
            0);
}

TEST_F(HfImport, Fp32ExportImportsBackBitwiseWithTheSameOutputs) {
  expect_round_trip(dir_ / "untied", /*tied=*/false, /*positions_2d=*/false, DType::kF32);
  expect_round_trip(dir_ / "tied2d", /*tied=*/true, /*positions_2d=*/true, DType::kF32);
}

TEST_F(HfImport, Bf16ExportImportsTheRoundedWeights) {
  expect_round_trip(dir_ / "bf16", /*tied=*/false, /*positions_2d=*/false, DType::kBF16);
}


std::vector<double> mean_of_rows(const Model& m, const std::string& name,
                                 const std::vector<int32_t>& rows) {
  std::vector<double> mean(static_cast<size_t>(m.dims.d_model), 0.0);
  for (const int32_t r : rows) {
    const std::span<const float> values = row(m, name, r);
    for (size_t c = 0; c < mean.size(); ++c) mean[c] += values[c];
  }
  for (double& v : mean) v /= static_cast<double>(rows.size());
  return mean;
}

void expect_row_near(const Model& m, const std::string& name, int64_t r,
                     const std::vector<double>& want, const std::string& what) {
  const std::span<const float> got = row(m, name, r);
  for (size_t c = 0; c < want.size(); ++c)
    ASSERT_NEAR(got[c], want[c], 1e-6) << what << " row " << r << " of " << name << " col " << c;
}

TEST_F(HfImport, TextRowsAreCopiedByTokenStringAndNewRowsAreMeans) {
  const RecDataset d = small_dataset();
  const Pretrained p = write_pretrained(dir_ / "hf", d);
  Model model(imported_dims(dir_ / "hf", d.vocab.vocab_size), 16);
  init_weights(model, 3, 0.3f);
  import_hf_weights(dir_ / "hf", model, &d);

  for (const ParamEntry& e : model.layout.entries()) {
    if (e.kind == ParamKind::kEmbedding) continue;
    const std::span<const float> want = tensor(*p.source, e.name), got = tensor(model, e.name);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), got.begin())) << e.name;
  }
  const VocabLayout& v = d.vocab;
  const BpeTokenizer tokenizer = dataset_tokenizer(d);
  for (const std::string matrix : {"model.embed_tokens.weight", "lm_head.weight"}) {
    for (int32_t t = 0; t < v.text_size; ++t) {
      const std::span<const float> want = row(*p.source, matrix, p.hf_id[static_cast<size_t>(t)]);
      const std::span<const float> got = row(model, matrix, t);
      ASSERT_TRUE(std::equal(want.begin(), want.end(), got.begin())) << matrix << " token " << t;
    }
    std::vector<int32_t> text_rows(static_cast<size_t>(v.text_size));
    std::iota(text_rows.begin(), text_rows.end(), 0);
    const std::vector<double> text_mean = mean_of_rows(model, matrix, text_rows);
    for (int32_t k = 0; k < 8; ++k) expect_row_near(model, matrix, v.special_first + k, text_mean, "special");
    for (int32_t item = 0; item < v.items.count; ++item) {
      const std::span<const int32_t> title = d.items.title_of(item);
      const std::vector<double> want =
          title.empty() ? text_mean : mean_of_rows(model, matrix, {title.begin(), title.end()});
      expect_row_near(model, matrix, v.item_token(item), want, "item");
    }
    EXPECT_TRUE(d.items.title_of(3).empty()) << "item 3 is the untitled one";
    ASSERT_GT(v.attributes.count, 0);
    for (int32_t attr = 0; attr < v.attributes.count; ++attr) {
      const std::vector<int32_t> name = tokenizer.encode(d.items.attribute_names[attr]);
      expect_row_near(model, matrix, v.attribute_token(attr), mean_of_rows(model, matrix, name),
                      "attribute");
    }
  }
}

TEST_F(HfImport, AFewMissingTextTokensGetTheMeanRow) {
  const RecDataset d = small_dataset();
  write_pretrained(dir_ / "hf", d, {.drop_text_tokens = 2});  // < 1% of ~300
  Model model(imported_dims(dir_ / "hf", d.vocab.vocab_size), 16);
  import_hf_weights(dir_ / "hf", model, &d);
  std::vector<int32_t> copied(static_cast<size_t>(d.vocab.text_size - 2));
  std::iota(copied.begin(), copied.end(), 2);
  const std::vector<double> mean = mean_of_rows(model, "model.embed_tokens.weight", copied);
  expect_row_near(model, "model.embed_tokens.weight", 0, mean, "missing text token");
  expect_row_near(model, "model.embed_tokens.weight", 1, mean, "missing text token");
}

TEST_F(HfImport, TextModelWithoutDatasetNeedsTheExactVocabulary) {
  const RecDataset d = small_dataset();
  const Pretrained p = write_pretrained(dir_ / "hf", d);
  const int64_t vocab = d.vocab.text_size + 2;
  Model exact(imported_dims(dir_ / "hf", vocab), 8);
  import_hf_weights(dir_ / "hf", exact, nullptr);
  for (const ParamEntry& e : exact.layout.entries()) {
    const std::span<const float> want = tensor(*p.source, e.name), got = tensor(exact, e.name);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), got.begin())) << e.name;
  }
  Model other(imported_dims(dir_ / "hf", vocab + 1), 8);
  const std::string message =
      thrown_message<UserError>([&] { import_hf_weights(dir_ / "hf", other, nullptr); });
  EXPECT_NE(message.find(fmt::format("model.embed_tokens.weight: shape [{}, 32] in the file, [{}, "
                                     "32] in the model",
                                     vocab, vocab + 1)),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("lm_head.weight: shape"), std::string::npos) << message;
}

// A LoRA fine-tune of a pretrained model: base tensors imported, adapters as initialised (B = 0, so
// step 0 computes the pretrained model).
TEST_F(HfImport, LoraAdaptersKeepTheirInitialisation) {
  const RecDataset d = small_dataset();
  const Pretrained p = write_pretrained(dir_ / "hf", d);
  ModelDims dims = imported_dims(dir_ / "hf", d.vocab.vocab_size);
  dims.lora_rank = 2;
  dims.lora_alpha = 4.0f;
  dims.lora_targets = kAllLoraTargets;
  Model model(dims, 8), initial(dims, 8);
  init_weights(model, 3, 0.3f);
  init_weights(initial, 3, 0.3f);
  import_hf_weights(dir_ / "hf", model, &d);
  int adapters = 0;
  for (const ParamEntry& e : model.layout.entries()) {
    const std::span<const float> got = tensor(model, e.name);
    if (e.kind == ParamKind::kLora) {
      ++adapters;
      const std::span<const float> want = tensor(initial, e.name);
      EXPECT_TRUE(std::equal(want.begin(), want.end(), got.begin())) << e.name;
    } else if (e.kind != ParamKind::kEmbedding) {
      const std::span<const float> want = tensor(*p.source, e.name);
      EXPECT_TRUE(std::equal(want.begin(), want.end(), got.begin())) << e.name;
    }
  }
  EXPECT_EQ(adapters, 2 * 7 * 2);
}

// A dataset prepared with GPT-2's tokenizer, imported from a model whose tokenizer.json carries
// GPT-2's vocabulary: every one of the 50257 text tokens finds its own row.
TEST_F(HfImport, DatasetPreparedWithTheModelsTokenizerFindsEveryTextRow) {
  SKIP_WITHOUT_GPT2();
  RecDataset d = small_dataset();
  VocabOptions options;
  options.tokenizer_dir = kGpt2Dir.string();
  build_item_vocabulary(d, options);
  ASSERT_EQ(d.vocab.text_size, 50257);
  const Pretrained p = write_pretrained(dir_ / "hf", d);
  std::ifstream encoder(kGpt2Dir / "encoder.json");
  const json tokenizer = {{"model", {{"type", "BPE"}, {"vocab", json::parse(encoder)}}}};
  write_text(dir_ / "hf" / "tokenizer.json", tokenizer.dump());
  Model model(imported_dims(dir_ / "hf", d.vocab.vocab_size), 8);
  import_hf_weights(dir_ / "hf", model, &d);
  const std::span<const float> want = tensor(*p.source, "model.embed_tokens.weight");
  const std::span<const float> got = tensor(model, "model.embed_tokens.weight");
  const size_t text_floats = static_cast<size_t>(d.vocab.text_size * model.dims.d_model);
  EXPECT_TRUE(std::equal(want.begin(), want.begin() + text_floats, got.begin()));
}

}  // namespace
}  // namespace reclm
