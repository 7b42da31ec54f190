// `train.init_from` dispatch: a checkpoint's weights (step directory or root with `latest`) into
// a fresh model, LoRA adapters kept when the file has none, and refusals naming the option.
#include "checkpoint/init_from.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/safetensors.h"
#include "runtime/errors.h"
#include "scratch_dir.h"
#include "thrown_message.h"
#include "trainer/tiny_dims.h"
#include "trainer/weights_file.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;

ModelDims plain_dims() { return test::tiny_model_dims({.tied = false}); }

ModelDims lora_dims() {
  ModelDims d = plain_dims();
  d.lora_rank = 2;
  d.lora_alpha = 4.0f;
  d.lora_targets = kAllLoraTargets;
  return d;
}

bool same_tensor(const Model& a, const Model& b, const std::string& name) {
  const ParamEntry& ea = a.layout.find(name);
  const ParamEntry& eb = b.layout.find(name);
  return ea.numel == eb.numel && std::memcmp(a.param_data() + ea.offset, b.param_data() + eb.offset,
                                             sizeof(float) * ea.numel) == 0;
}

class InitFrom : public ScratchDirTest {
 protected:
  void SetUp() override {
    ScratchDirTest::SetUp();
    saved_ = std::make_unique<Model>(plain_dims(), 8);
    init_weights(*saved_, 7, 0.3f);
    step_dir_ = commit_checkpoint(dir_ / "ckpt", 10, [&](const fs::path& dir) {
      save_weights(dir / "model.h5", *saved_, "model {}\n");
    });
  }
  fs::path step_dir_;
  std::unique_ptr<Model> saved_;
};

TEST_F(InitFrom, CheckpointRootOrStepDirectoryGivesTheSavedWeights) {
  for (const fs::path& spec_dir : {dir_ / "ckpt", step_dir_}) {
    Model fresh(plain_dims(), 8);
    init_weights(fresh, 8, 0.3f);
    init_model_from("ckpt:" + spec_dir.string(), fresh, nullptr);
    for (const ParamEntry& e : saved_->layout.entries())
      EXPECT_TRUE(same_tensor(*saved_, fresh, e.name)) << spec_dir << " " << e.name;
  }
}

TEST_F(InitFrom, LoraModelFromAFullCheckpointKeepsItsAdapterInit) {
  Model lora(lora_dims(), 8);
  init_weights(lora, 3, 0.3f);
  Model initial(lora_dims(), 8);
  init_weights(initial, 3, 0.3f);
  init_model_from("ckpt:" + (dir_ / "ckpt").string(), lora, nullptr);
  int adapters = 0;
  for (const ParamEntry& e : lora.layout.entries()) {
    if (e.kind == ParamKind::kLora) {
      ++adapters;
      EXPECT_TRUE(same_tensor(lora, initial, e.name)) << e.name;
    } else {
      EXPECT_TRUE(same_tensor(lora, *saved_, e.name)) << e.name;
    }
  }
  EXPECT_EQ(adapters, 2 * 7 * 2) << "A and B for 7 projections in 2 layers";
  // The plain load_weights still wants every tensor of the layout.
  EXPECT_NE(thrown_message<UserError>([&] { load_weights(step_dir_ / "model.h5", lora); })
                .find("model.layers.0.self_attn.q_proj.lora_A.weight: missing"),
            std::string::npos);
}

TEST_F(InitFrom, ACheckpointOfAnotherShapeListsTheMismatches) {
  ModelDims wider = plain_dims();
  wider.d_ff = 48;
  Model other(wider, 8);
  const std::string message = thrown_message<UserError>(
      [&] { init_model_from("ckpt:" + step_dir_.string(), other, nullptr); });
  EXPECT_NE(message.find("model.layers.1.mlp.down_proj.weight: shape [24, 40] in the file, [24, "
                         "48] in the model"),
            std::string::npos)
      << message;
}

TEST_F(InitFrom, HfDirectoryOfATextModelIsImported) {
  const fs::path hf = dir_ / "hf";
  fs::create_directories(hf);
  std::vector<SafetensorsEntry> entries;
  for (const ParamEntry& e : saved_->layout.entries())
    entries.push_back({e.name, e.shape, saved_->param_data() + e.offset, DType::kF32});
  write_safetensors(hf / "model.safetensors", entries);
  Model fresh(plain_dims(), 8);
  init_model_from("hf:" + hf.string(), fresh, nullptr);
  for (const ParamEntry& e : saved_->layout.entries())
    EXPECT_TRUE(same_tensor(*saved_, fresh, e.name)) << e.name;
}

TEST_F(InitFrom, BadSpecsAreUserErrorsNamingTheOption) {
  Model model(plain_dims(), 8);
  for (const std::string spec : {"model.h5", "hf:", "ckpt:", "s3:bucket"}) {
    EXPECT_NE(thrown_message<UserError>([&] { init_model_from(spec, model, nullptr); })
                  .find("train.init_from"),
              std::string::npos)
        << spec;
  }
  fs::create_directories(dir_ / "empty");
  const std::string message = thrown_message<UserError>(
      [&] { init_model_from("ckpt:" + (dir_ / "empty").string(), model, nullptr); });
  EXPECT_NE(message.find("holds neither model.h5"), std::string::npos) << message;
  EXPECT_NE(thrown_message<UserError>([&] {
              init_model_from("hf:" + (dir_ / "nowhere").string(), model, nullptr);
            }).find("is not a directory"),
            std::string::npos);
  model.param_data()[0] = 42.0f;
  init_model_from("", model, nullptr);  // no init_from: the random init stays
  EXPECT_EQ(model.param_data()[0], 42.0f);
}

}  // namespace
}  // namespace reclm
