// Config loading (runtime/config.h): text parsing with file:line:col errors, --set overrides,
// resolution of defaults and derived values, semantic validation, and the shipped presets.
#include "runtime/config.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/errors.h"
#include "thrown_message.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;


// A config with every default filled in: the state validate_config sees in load_config.
Config resolved(const std::vector<std::string>& overrides = {}) {
  Config config;
  for (const std::string& assignment : overrides) apply_override(config, assignment);
  resolve_config(config);
  return config;
}

// ---- parsing ---------------------------------------------------------------------------------

TEST(ConfigParse, ValidTextSetsFieldsAndLeavesOthersUnset) {
  const Config config = parse_config_text(R"(
    # a comment
    model { d_model: 64 n_heads: 2 positions: POSITIONS_2D }
    train { lr: 1e-3 schedule: LINEAR run_dir: "runs/x" }
    optim { decay_norms: true }
  )",
                                          "inline");
  EXPECT_EQ(config.model().d_model(), 64);
  EXPECT_EQ(config.model().n_heads(), 2);
  EXPECT_EQ(config.model().positions(), config::ModelConfig::POSITIONS_2D);
  EXPECT_FLOAT_EQ(config.train().lr(), 1e-3f);
  EXPECT_EQ(config.train().schedule(), config::TrainConfig::LINEAR);
  EXPECT_EQ(config.train().run_dir(), "runs/x");
  EXPECT_TRUE(config.optim().decay_norms());
  EXPECT_FALSE(config.model().has_n_layers());
  EXPECT_FALSE(config.has_data());
}

TEST(ConfigParse, SyntaxErrorNamesOneBasedLineAndColumn) {
  // Line 3, column 12 is the `4` after the missing colon (protobuf itself counts from 0).
  const std::string message = thrown_message<UserError>(
      [] { parse_config_text("model {\n  d_model: 64\n  n_layers 4\n}\n", "bad.pbtxt"); });
  EXPECT_EQ(message.rfind("bad.pbtxt:3:12: ", 0), 0u) << message;
}

TEST(ConfigParse, UnknownFieldIsAnErrorNamingItAndTheValidFields) {
  const std::string message =
      thrown_message<UserError>([] { parse_config_text("train {\n  lrr: 0.1\n}\n", "typo.pbtxt"); });
  EXPECT_EQ(message.rfind("typo.pbtxt:2:", 0), 0u) << message;
  EXPECT_NE(message.find("\"lrr\""), std::string::npos) << message;
  EXPECT_NE(message.find("warmup_steps"), std::string::npos) << message;
}

TEST(ConfigParse, UnknownEnumValueListsTheValues) {
  const std::string message =
      thrown_message<UserError>([] { parse_config_text("model { positions: POSITIONS_3D }", "e.pbtxt"); });
  EXPECT_NE(message.find("e.pbtxt:1:"), std::string::npos) << message;
  EXPECT_NE(message.find("POSITIONS_2D"), std::string::npos) << message;
}

TEST(ConfigParse, WrongValueTypeIsAnError) {
  EXPECT_NE(thrown_message<UserError>([] {
              parse_config_text("train {\n  steps: abc\n}", "t.pbtxt");
            }).find("t.pbtxt:2:10:"),
            std::string::npos);
  EXPECT_NE(thrown_message<UserError>([] {
              parse_config_text("train { steps: 1.5 }", "t.pbtxt");
            }).find("t.pbtxt:1:"),
            std::string::npos);
  EXPECT_NE(thrown_message<UserError>([] {
              parse_config_text("model { d_model: 3000000000 }", "t.pbtxt");
            }).find("t.pbtxt:1:"),
            std::string::npos);
}

TEST(ConfigParse, FieldGivenTwiceIsAnError) {
  const std::string message =
      thrown_message<UserError>([] { parse_config_text("model { d_model: 1 d_model: 2 }", "twice.pbtxt"); });
  EXPECT_NE(message.find("twice.pbtxt:1:"), std::string::npos) << message;
}

TEST(ConfigFile, MissingFileIsAnErrorNamingIt) {
  const std::string message = thrown_message<UserError>([] { read_config_file("/nonexistent/x.pbtxt"); });
  EXPECT_NE(message.find("/nonexistent/x.pbtxt"), std::string::npos) << message;
}

TEST(ConfigFile, ErrorsInAFileNameThatFile) {
  const fs::path path = fs::temp_directory_path() / "reclm_config_test_bad.pbtxt";
  std::ofstream(path) << "model {\n  d_model: 64\n}\ntrain {\n  lr 1\n}\n";
  const std::string message = thrown_message<UserError>([&] { read_config_file(path.string()); });
  fs::remove(path);
  EXPECT_EQ(message.rfind(path.string() + ":5:", 0), 0u) << message;
}

// ---- presets ---------------------------------------------------------------------------------

TEST(ConfigPresets, EveryPresetLoadsAndValidates) {
  int presets = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(RECLM_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".pbtxt") continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(load_config(entry.path().string(), {}));
    ++presets;
  }
  EXPECT_GE(presets, 2);  // tiny and quickstart at least
}

TEST(ConfigPresets, TinyHasTheValuesTestsRelyOn) {
  const Config config = load_config(std::string(RECLM_SOURCE_DIR) + "/configs/tiny.pbtxt", {});
  EXPECT_EQ(config.model().d_model(), 32);
  EXPECT_EQ(config.model().n_kv_heads(), 2);
  EXPECT_EQ(config.data().seq_len(), 32);
  EXPECT_EQ(config.train().steps(), 30);
  EXPECT_EQ(config.runtime().threads(), 2);
}

// ---- overrides -------------------------------------------------------------------------------

TEST(ConfigOverride, SetsScalarsOfEveryKind) {
  Config config;
  apply_override(config, "model.d_model=512");
  apply_override(config, "train.steps=10000000000");
  apply_override(config, "runtime.seed=18446744073709551615");
  apply_override(config, "train.lr=3e-4");
  apply_override(config, "data.val_fraction=0.25");
  apply_override(config, "model.tie_embeddings=false");
  apply_override(config, "optim.decay_norms=1");
  apply_override(config, "train.schedule=CONSTANT");
  apply_override(config, "model.positions=1");       // enums by number too, as protobuf allows
  apply_override(config, "train.run_dir=runs/a=b");  // only the first '=' separates
  EXPECT_EQ(config.model().d_model(), 512);
  EXPECT_EQ(config.train().steps(), 10000000000);
  EXPECT_EQ(config.runtime().seed(), 18446744073709551615u);
  EXPECT_FLOAT_EQ(config.train().lr(), 3e-4f);
  EXPECT_DOUBLE_EQ(config.data().val_fraction(), 0.25);
  EXPECT_FALSE(config.model().tie_embeddings());
  EXPECT_TRUE(config.model().has_tie_embeddings());
  EXPECT_TRUE(config.optim().decay_norms());
  EXPECT_EQ(config.train().schedule(), config::TrainConfig::CONSTANT);
  EXPECT_EQ(config.model().positions(), config::ModelConfig::POSITIONS_2D);
  EXPECT_EQ(config.train().run_dir(), "runs/a=b");
}

TEST(ConfigOverride, CreatesNestedMessagesAndKeepsSiblings) {
  Config config = parse_config_text("train { steps: 7 }", "inline");
  EXPECT_FALSE(config.has_optim());
  apply_override(config, "optim.beta2=0.99");
  apply_override(config, "train.lr=0.5");
  EXPECT_TRUE(config.has_optim());
  EXPECT_FLOAT_EQ(config.optim().beta2(), 0.99f);
  EXPECT_EQ(config.train().steps(), 7);
  EXPECT_FLOAT_EQ(config.train().lr(), 0.5f);
}

TEST(ConfigOverride, LaterOverrideWins) {
  const Config config = load_config("", {"train.steps=5", "train.steps=6"});
  EXPECT_EQ(config.train().steps(), 6);
}

TEST(ConfigOverride, RepeatedFieldTakesACommaSeparatedListReplacingTheOldOne) {
  const Config config = load_config("", {"eval.ks=3,7", "data.held_out_prompts=seq-3,direct-2"});
  EXPECT_EQ(std::vector<int>(config.eval().ks().begin(), config.eval().ks().end()),
            (std::vector<int>{3, 7}));
  ASSERT_EQ(config.data().held_out_prompts_size(), 2);
  EXPECT_EQ(config.data().held_out_prompts(1), "direct-2");
  EXPECT_EQ(load_config("", {"eval.ks=3,7", "eval.ks=5"}).eval().ks_size(), 1);
  EXPECT_EQ(load_config("", {"eval.ks=3", "eval.ks="}).eval().ks_size(), 0);
  EXPECT_EQ(thrown_message<UserError>([] { load_config("", {"eval.ks=5,x"}); }),
            "--set eval.ks=5,x: \"x\" is not an integer (int32) (field eval.ks)");
}

TEST(ConfigOverride, UnknownFieldNamesPathAndListsValidFields) {
  Config config;
  EXPECT_EQ(thrown_message<UserError>([&] { apply_override(config, "train.lrr=3e-4"); }),
            "--set train.lrr=3e-4: no field \"lrr\" in train (fields: steps, micro_batch, "
            "grad_accum, lr, warmup_steps, schedule, min_lr_ratio, run_dir, log_every, "
            "on_nonfinite, init_from)");
  const std::string top = thrown_message<UserError>([&] { apply_override(config, "trian.lr=1"); });
  EXPECT_NE(top.find("no field \"trian\""), std::string::npos) << top;
  EXPECT_NE(top.find("model, data, train"), std::string::npos) << top;
}

TEST(ConfigOverride, PathThroughAScalarOrEndingAtAGroupIsAnError) {
  Config config;
  EXPECT_NE(thrown_message<UserError>([&] { apply_override(config, "train.lr.x=1"); }).find("train.lr"),
            std::string::npos);
  EXPECT_NE(thrown_message<UserError>([&] { apply_override(config, "train=1"); }).find("group of options"),
            std::string::npos);
}

TEST(ConfigOverride, MissingEqualsOrPathIsAnError) {
  Config config;
  EXPECT_NE(thrown_message<UserError>([&] { apply_override(config, "train.lr"); }).find("path=value"),
            std::string::npos);
  EXPECT_NE(thrown_message<UserError>([&] { apply_override(config, "=3"); }).find("--set =3"),
            std::string::npos);
}

struct BadValueCase {
  const char* assignment;
  const char* expected;  // a substring of the message
};

class ConfigOverrideBadValue : public testing::TestWithParam<BadValueCase> {};

TEST_P(ConfigOverrideBadValue, IsAnErrorNamingOverrideAndField) {
  Config config;
  const std::string assignment = GetParam().assignment;
  const std::string message = thrown_message<UserError>([&] { apply_override(config, assignment); });
  EXPECT_EQ(message.rfind("--set " + assignment + ": ", 0), 0u) << message;
  EXPECT_NE(message.find(GetParam().expected), std::string::npos) << message;
  const std::string path = assignment.substr(0, assignment.find('='));
  EXPECT_NE(message.find("(field " + path + ")"), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Values, ConfigOverrideBadValue,
    testing::Values(BadValueCase{"train.lr=abc", "not a number"},
                    BadValueCase{"train.lr=3e-4x", "not a number"},  // trailing garbage
                    BadValueCase{"train.lr=", "not a number"},
                    BadValueCase{"train.lr=1e999", "out of range for float"},
                    BadValueCase{"train.lr=inf", "not a finite float"},
                    BadValueCase{"data.val_fraction=nan", "not a finite double"},
                    BadValueCase{"model.d_model=12x", "not an integer"},
                    BadValueCase{"model.d_model=1.5", "not an integer"},
                    BadValueCase{"model.d_model=3000000000", "out of range for int32"},
                    BadValueCase{"train.steps=99999999999999999999", "out of range for int64"},
                    BadValueCase{"runtime.seed=-1", "not an integer (uint64)"},
                    BadValueCase{"model.tie_embeddings=yes", "not a bool"},
                    BadValueCase{"train.schedule=COSIN", "values: COSINE, LINEAR, CONSTANT"},
                    BadValueCase{"train.schedule=7", "not a Schedule"}));

// ---- resolve ---------------------------------------------------------------------------------

TEST(ConfigResolve, FillsEveryFieldWithItsDefault) {
  const Config config = resolved();
  EXPECT_TRUE(config.has_checkpoint());  // empty groups too, so the printout shows them
  EXPECT_TRUE(config.model().has_vocab_size());
  EXPECT_TRUE(config.data().has_text_path());
  EXPECT_TRUE(config.runtime().has_seed());
  EXPECT_EQ(config.model().vocab_size(), 0);  // 0 = the data's vocabulary
  EXPECT_EQ(config.train().schedule(), config::TrainConfig::COSINE);
  EXPECT_EQ(config.runtime().device(), "cpu");
  const std::string text = config_to_text(config);
  for (const char* line : {"checkpoint {", "text_path: \"\"", "decay_norms: false", "threads: 0",
                           "seed: 1234", "on_nonfinite: STOP"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
}

TEST(ConfigResolve, DerivesKvHeadsAndLlamaMlpWidth) {
  const Config defaults = resolved();
  EXPECT_EQ(defaults.model().n_kv_heads(), 4);  // = n_heads
  EXPECT_EQ(defaults.model().d_ff(), 768);      // ceil(8·256/3) = 683 → 768
  const Config quickstart = resolved({"model.d_model=192", "model.n_heads=6"});
  EXPECT_EQ(quickstart.model().n_kv_heads(), 6);
  EXPECT_EQ(quickstart.model().d_ff(), 512);  // 8·192/3 = 512 exactly
  // Llama-7B: ceil(8·4096/3) = 10923 → 11008 (multiple of 256).
  EXPECT_EQ(resolved({"model.d_model=4096"}).model().d_ff(), 11008);
}

TEST(ConfigResolve, KeepsExplicitValuesAndIsIdempotent) {
  Config config = resolved({"model.n_kv_heads=2", "model.d_ff=100", "train.lr=0.5"});
  EXPECT_EQ(config.model().n_kv_heads(), 2);
  EXPECT_EQ(config.model().d_ff(), 100);
  EXPECT_FLOAT_EQ(config.train().lr(), 0.5f);
  const Config again = config;
  resolve_config(config);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(config, again));
}

TEST(ConfigText, RoundTripsThroughParse) {
  const Config config = load_config(std::string(RECLM_SOURCE_DIR) + "/configs/tiny.pbtxt",
                                    {"train.lr=3e-4", "optim.beta2=0.999", "train.run_dir=r t"});
  const Config parsed = parse_config_text(config_to_text(config), "printed");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(config, parsed))
      << config_to_text(config) << "\nvs\n"
      << config_to_text(parsed);
}

// ---- validate --------------------------------------------------------------------------------

TEST(ConfigValidate, DefaultsAreValid) { EXPECT_NO_THROW(validate_config(resolved())); }

TEST(ConfigValidate, ReportsEveryBrokenRuleAtOnce) {
  const std::string message = thrown_message<UserError>([] {
    validate_config(resolved({"model.n_layers=0", "optim.eps=0", "eval.val_batches=0"}));
  });
  EXPECT_NE(message.find("3 invalid fields"), std::string::npos) << message;
  EXPECT_NE(message.find("field model.n_layers"), std::string::npos) << message;
  EXPECT_NE(message.find("field optim.eps"), std::string::npos) << message;
  EXPECT_NE(message.find("field eval.val_batches"), std::string::npos) << message;
}

TEST(ConfigValidate, LoadConfigNamesTheFileAndTheOverrides) {
  const std::string path = std::string(RECLM_SOURCE_DIR) + "/configs/tiny.pbtxt";
  const std::string message =
      thrown_message<UserError>([&] { load_config(path, {"train.steps=7", "data.seq_len=100"}); });
  EXPECT_EQ(message, path + " with --set train.steps=7 --set data.seq_len=100: field data.seq_len: "
                            "must be <= model.max_seq_len (100 > 64)");
  // No file: the overrides alone say where the value came from.
  EXPECT_EQ(thrown_message<UserError>([] { load_config("", {"train.steps=0"}); }),
            "--set train.steps=0: field train.steps: must be > 0 (got 0)");
}

struct RuleCase {
  std::vector<std::string> overrides;  // applied to the defaults, then resolved
  std::string expected;                // the whole message (exactly one rule broken)
};

class ConfigValidateRule : public testing::TestWithParam<RuleCase> {};

TEST_P(ConfigValidateRule, FailsWithAMessageNamingTheField) {
  const Config config = resolved(GetParam().overrides);
  EXPECT_EQ(thrown_message<UserError>([&] { validate_config(config); }), GetParam().expected);
}

std::vector<RuleCase> rule_cases() {
  return {
      {{"model.vocab_size=-1"}, "field model.vocab_size: must be >= 0 (got -1)"},
      {{"model.d_model=-8", "model.d_ff=64"}, "field model.d_model: must be > 0 (got -8)"},
      {{"model.n_layers=0"}, "field model.n_layers: must be > 0 (got 0)"},
      {{"model.n_heads=-4", "model.n_kv_heads=1"}, "field model.n_heads: must be > 0 (got -4)"},
      {{"model.n_kv_heads=-1"}, "field model.n_kv_heads: must be > 0 (got -1)"},
      {{"model.d_ff=-64"}, "field model.d_ff: must be > 0 (got -64)"},
      {{"model.max_seq_len=0", "data.seq_len=1"}, "field model.max_seq_len: must be > 0 (got 0)"},
      {{"model.n_heads=6", "model.n_kv_heads=6"},
       "field model.d_model: must be divisible by model.n_heads (256 % 6 != 0)"},
      {{"model.n_kv_heads=3"}, "field model.n_kv_heads: must divide model.n_heads (4 % 3 != 0)"},
      {{"model.d_model=12", "model.n_heads=4"},
       "field model.d_model: head dim d_model / n_heads = 12 / 4 = 3 must be even (RoPE)"},
      {{"model.d_model=24", "model.n_heads=4", "model.positions=POSITIONS_2D"},
       "field model.positions: POSITIONS_2D needs head dim d_model / n_heads divisible by 4 "
       "(got 24 / 4 = 6)"},
      {{"model.rope_theta=0"}, "field model.rope_theta: must be > 0 (got 0)"},
      {{"model.norm_eps=-1e-05"}, "field model.norm_eps: must be > 0 (got -1e-05)"},
      {{"model.init_std=0"}, "field model.init_std: must be > 0 (got 0)"},
      {{"data.seq_len=0"}, "field data.seq_len: must be > 0 (got 0)"},
      {{"data.seq_len=512"}, "field data.seq_len: must be <= model.max_seq_len (512 > 256)"},
      {{"data.val_fraction=0"}, "field data.val_fraction: must be in (0, 0.5] (got 0)"},
      {{"data.val_fraction=0.75"}, "field data.val_fraction: must be in (0, 0.5] (got 0.75)"},
      {{"data.synthetic_bytes=0"}, "field data.synthetic_bytes: must be > 0 (got 0)"},
      {{"train.steps=0"}, "field train.steps: must be > 0 (got 0)"},
      {{"train.micro_batch=0"}, "field train.micro_batch: must be > 0 (got 0)"},
      {{"train.grad_accum=-1"}, "field train.grad_accum: must be > 0 (got -1)"},
      {{"train.lr=0"}, "field train.lr: must be > 0 (got 0)"},
      {{"train.warmup_steps=-1"}, "field train.warmup_steps: must be >= 0 (got -1)"},
      {{"train.min_lr_ratio=1.5"}, "field train.min_lr_ratio: must be in [0, 1] (got 1.5)"},
      {{"train.min_lr_ratio=-0.1"}, "field train.min_lr_ratio: must be in [0, 1] (got -0.1)"},
      {{"train.log_every=0"}, "field train.log_every: must be > 0 (got 0)"},
      {{"optim.beta1=1"}, "field optim.beta1: must be in [0, 1) (got 1)"},
      {{"optim.beta2=-0.5"}, "field optim.beta2: must be in [0, 1) (got -0.5)"},
      {{"optim.eps=0"}, "field optim.eps: must be > 0 (got 0)"},
      {{"optim.weight_decay=-0.1"}, "field optim.weight_decay: must be >= 0 (got -0.1)"},
      {{"optim.grad_clip=-1"}, "field optim.grad_clip: must be >= 0 (got -1)"},
      {{"eval.val_every=-1"}, "field eval.val_every: must be >= 0 (got -1)"},
      {{"eval.val_batches=0"}, "field eval.val_batches: must be > 0 (got 0)"},
      {{"model.lora.rank=-1"}, "field model.lora.rank: must be >= 0 (got -1)"},
      {{"model.lora.alpha=0"}, "field model.lora.alpha: must be > 0 (got 0)"},
      {{"model.lora.targets=q_proj,qkv"},
       "field model.lora.targets: unknown projection \"qkv\" (q_proj, k_proj, v_proj, o_proj, "
       "gate_proj, up_proj, down_proj)"},
      {{"train.init_from=/models/llama"},
       "field train.init_from: must be \"hf:DIR\" or \"ckpt:DIR\" (got \"/models/llama\")"},
      {{"train.init_from=hf:"}, "field train.init_from: \"hf:\" names no directory"},
      {{"checkpoint.every=-5"}, "field checkpoint.every: must be >= 0 (got -5)"},
      {{"checkpoint.keep_last=-1"}, "field checkpoint.keep_last: must be >= 0 (got -1)"},
      {{"runtime.threads=-2"}, "field runtime.threads: must be >= 0 (got -2)"},
      {{"runtime.grad_bucket_mb=-1"}, "field runtime.grad_bucket_mb: must be >= 0 (got -1)"},
      {{"runtime.vocab_parallel=true", "optim.zero1=true"},
       "field runtime.vocab_parallel: cannot be combined with optim.zero1"},
      {{"runtime.vocab_parallel=true", "model.lora.rank=4"},
       "field runtime.vocab_parallel: cannot be combined with model.lora"},
      {{"runtime.device=tpu"}, "field runtime.device: must be \"cpu\" or \"cuda\" (got \"tpu\")"},
      {{"runtime.peak_tflops=-1"}, "field runtime.peak_tflops: must be >= 0 (got -1)"},
      {{"runtime.device=cuda", "model.d_model=96", "model.n_heads=6", "model.n_kv_heads=6"},
       "field runtime.device: \"cuda\" needs head dim d_model / n_heads = 32, 64, 96 or 128 (got 96 / 6 = 16)"},
      {{"runtime.recompute_activations=true"},
       "field runtime.recompute_activations: applies to runtime.device \"cuda\" only (the device is \"cpu\")"},
      {{"runtime.fp32_logits=true"},
       "field runtime.fp32_logits: applies to runtime.device \"cuda\" only (the device is \"cpu\")"},
      {{"runtime.second_stream=false"},
       "field runtime.second_stream: applies to runtime.device \"cuda\" only (the device is \"cpu\")"},
      {{"runtime.gemm_autotune=true"},
       "field runtime.gemm_autotune: applies to runtime.device \"cuda\" only (the device is \"cpu\")"},
      {{"runtime.queued_steps=false"},
       "field runtime.queued_steps: applies to runtime.device \"cuda\" only (the device is \"cpu\")"},
      {{"runtime.bf16_residual=true"},
       "field runtime.bf16_residual: applies to runtime.device \"cuda\" only (the device is \"cpu\")"},
  };
}

INSTANTIATE_TEST_SUITE_P(Rules, ConfigValidateRule, testing::ValuesIn(rule_cases()));

// --set rejects inf/nan, but a .pbtxt file may spell them; validation catches every float field.
TEST(ConfigValidate, NonFiniteFloatsFromAFileAreErrors) {
  for (const char* text : {"train { lr: inf }", "model { rope_theta: nan }",
                           "optim { grad_clip: -inf }", "data { val_fraction: nan }"}) {
    Config config = parse_config_text(text, "inline");
    resolve_config(config);
    const std::string message = thrown_message<UserError>([&] { validate_config(config); });
    EXPECT_NE(message.find("must be finite"), std::string::npos) << text << ": " << message;
  }
}

}  // namespace
}  // namespace reclm
