// Model weights in HDF5: a bitwise round trip, every mismatch listed in one message, version and
// file checks, and an existing file surviving a failed save.
#include "trainer/weights_file.h"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "runtime/errors.h"
#include "scratch_dir.h"
#include "thrown_message.h"
#include "trainer/tiny_dims.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;

class WeightsFile : public ScratchDirTest {};

ModelDims tiny_dims(bool tied, int64_t d_ff = 40) {
  return test::tiny_model_dims({.head_dim = 6, .d_ff = d_ff, .tied = tied, .positions_2d = true});
}

// Every tensor of the layout, bit for bit (padding between tensors is not part of the file).
void expect_bitwise_equal(const Model& a, const Model& b) {
  for (const ParamEntry& e : a.layout.entries()) {
    EXPECT_EQ(std::memcmp(a.param_data() + e.offset, b.param_data() + e.offset,
                          sizeof(float) * e.numel),
              0)
        << e.name;
  }
}

const char* kConfigText = "model {\n  d_model: 24\n  name: \"tïny\"\n}\n";

TEST_F(WeightsFile, RoundTripIsBitwiseForTiedAndUntiedModels) {
  for (bool tied : {false, true}) {
    Model saved(tiny_dims(tied), 8);
    init_weights(saved, 7, 0.3f);
    saved.param_data()[saved.layout.entries()[1].offset] = -0.0f;  // sign of zero survives
    const fs::path path = dir_ / (tied ? "tied.h5" : "untied.h5");
    save_weights(path, saved, kConfigText);
    Model loaded(tiny_dims(tied), 8);
    init_weights(loaded, 8, 0.3f);  // different values everywhere before the load
    load_weights(path, loaded);
    expect_bitwise_equal(saved, loaded);
    EXPECT_EQ(read_weights_config(path), kConfigText);
    EXPECT_FALSE(fs::exists(dir_ / (path.filename().string() + ".tmp")));
  }
}

TEST_F(WeightsFile, TensorsAreStoredUnderTheirHuggingFaceNamesAndShapes) {
  Model model(tiny_dims(false), 8);
  init_weights(model, 7, 0.3f);
  const fs::path path = dir_ / "model.h5";
  save_weights(path, model, kConfigText);
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const hid_t dataset = H5Dopen2(file, "/model.layers.1.mlp.gate_proj.weight", H5P_DEFAULT);
  ASSERT_GE(dataset, 0);
  const hid_t space = H5Dget_space(dataset);
  hsize_t dims[2] = {0, 0};
  EXPECT_EQ(H5Sget_simple_extent_ndims(space), 2);
  H5Sget_simple_extent_dims(space, dims, nullptr);
  EXPECT_EQ(dims[0], 40u);
  EXPECT_EQ(dims[1], 24u);
  const hid_t type = H5Dget_type(dataset);
  EXPECT_GT(H5Tequal(type, H5T_IEEE_F32LE), 0);
  H5Tclose(type);
  H5Sclose(space);
  H5Dclose(dataset);
  H5Fclose(file);
}

TEST_F(WeightsFile, ShapeMismatchListsEveryTensorAndLeavesModelUntouched) {
  Model saved(tiny_dims(false, 40), 8);
  init_weights(saved, 7, 0.3f);
  const fs::path path = dir_ / "model.h5";
  save_weights(path, saved, kConfigText);
  Model other(tiny_dims(false, 48), 8);
  init_weights(other, 9, 0.3f);
  Model untouched(tiny_dims(false, 48), 8);
  init_weights(untouched, 9, 0.3f);
  const std::string message = thrown_message<UserError>([&] { load_weights(path, other); });
  EXPECT_EQ(message.rfind(path.string() + ": the weights do not fit this model (7 mismatches)", 0),
            0u)
      << message;
  EXPECT_NE(message.find("attribute d_ff: 40 in the file, 48 in the model"), std::string::npos);
  for (int layer : {0, 1}) {
    const std::string p = "model.layers." + std::to_string(layer) + ".mlp.";
    EXPECT_NE(message.find(p + "gate_proj.weight: shape [40, 24] in the file, [48, 24] in the model"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find(p + "up_proj.weight: shape [40, 24]"), std::string::npos) << message;
    EXPECT_NE(message.find(p + "down_proj.weight: shape [24, 40] in the file, [24, 48]"),
              std::string::npos)
        << message;
  }
  expect_bitwise_equal(other, untouched);
}

TEST_F(WeightsFile, TiedModelRefusesUntiedWeights) {
  Model untied(tiny_dims(false), 8);
  init_weights(untied, 7, 0.3f);
  const fs::path path = dir_ / "model.h5";
  save_weights(path, untied, kConfigText);
  Model tied(tiny_dims(true), 8);
  const std::string message = thrown_message<UserError>([&] { load_weights(path, tied); });
  EXPECT_NE(message.find("attribute tied: 0 in the file, 1 in the model"), std::string::npos)
      << message;
  EXPECT_NE(message.find("lm_head.weight: in the file, not in the model"), std::string::npos)
      << message;
}

TEST_F(WeightsFile, OtherFormatVersionIsAUserError) {
  Model model(tiny_dims(false), 8);
  const fs::path path = dir_ / "model.h5";
  save_weights(path, model, kConfigText);
  {
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    const hid_t attribute = H5Aopen(file, "format_version", H5P_DEFAULT);
    const int64_t version = 7;
    EXPECT_GE(H5Awrite(attribute, H5T_NATIVE_INT64, &version), 0);
    H5Aclose(attribute);
    H5Fclose(file);
  }
  const std::string expected = path.string() + ": weights format version 7, this reclm reads version 1";
  EXPECT_EQ(thrown_message<UserError>([&] { load_weights(path, model); }), expected);
  EXPECT_EQ(thrown_message<UserError>([&] { read_weights_config(path); }), expected);
}

TEST_F(WeightsFile, MissingOrNonHdf5FileIsAUserError) {
  Model model(tiny_dims(false), 8);
  const fs::path missing = dir_ / "absent.h5";
  EXPECT_EQ(thrown_message<UserError>([&] { load_weights(missing, model); }),
            missing.string() + ": file not found");
  const fs::path text = dir_ / "model.h5";
  std::ofstream(text) << "not weights";
  EXPECT_EQ(thrown_message<UserError>([&] { load_weights(text, model); }),
            text.string() + ": not an HDF5 file");
}

TEST_F(WeightsFile, FailedSaveKeepsTheExistingFile) {
  Model first(tiny_dims(false), 8);
  init_weights(first, 7, 0.3f);
  const fs::path path = dir_ / "model.h5";
  save_weights(path, first, kConfigText);
  Model second(tiny_dims(false), 8);
  init_weights(second, 8, 0.3f);
  // A config text with a NUL byte cannot be stored: the save fails after PATH.tmp was created.
  const std::string bad_config("a\0b", 3);
  const std::string message =
      thrown_message<UserError>([&] { save_weights(path, second, bad_config); });
  EXPECT_NE(message.find("attribute config"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir_ / "model.h5.tmp"));
  Model loaded(tiny_dims(false), 8);
  load_weights(path, loaded);
  expect_bitwise_equal(first, loaded);
}

ModelDims with_lora(ModelDims d) {
  d.lora_rank = 2;
  d.lora_alpha = 4.0f;
  d.lora_targets = (1u << static_cast<int>(LoraTarget::kQ)) |
                   (1u << static_cast<int>(LoraTarget::kDown));
  return d;
}

// `train.init_from: "ckpt:DIR"` starts a LoRA run from a full-weights file: the adapters the file
// lacks keep their init only when asked, and base tensors are still checked.
TEST_F(WeightsFile, MissingLoraTensorsKeepTheirInitOnlyWhenAsked) {
  Model plain(tiny_dims(false), 8);
  init_weights(plain, 7, 0.3f);
  const fs::path path = dir_ / "model.h5";
  save_weights(path, plain, kConfigText);
  Model lora(with_lora(tiny_dims(false)), 8);
  init_weights(lora, 3, 0.3f);
  Model initial(with_lora(tiny_dims(false)), 8);
  init_weights(initial, 3, 0.3f);

  const std::string message = thrown_message<UserError>([&] { load_weights(path, lora); });
  EXPECT_NE(message.find("(8 mismatches)"), std::string::npos) << message;
  EXPECT_NE(message.find("model.layers.1.mlp.down_proj.lora_B.weight: missing"), std::string::npos)
      << message;

  load_weights(path, lora, {.keep_missing_lora = true});
  for (const ParamEntry& e : lora.layout.entries()) {
    const Model& want = e.kind == ParamKind::kLora ? initial : plain;
    const ParamEntry& w = want.layout.find(e.name);
    EXPECT_EQ(std::memcmp(lora.param_data() + e.offset, want.param_data() + w.offset,
                          sizeof(float) * e.numel),
              0)
        << e.name;
  }

  Model wider(with_lora(tiny_dims(false, 48)), 8);
  EXPECT_NE(thrown_message<UserError>([&] {
              load_weights(path, wider, {.keep_missing_lora = true});
            }).find("gate_proj.weight: shape [40, 24] in the file, [48, 24] in the model"),
            std::string::npos);
}

}  // namespace
}  // namespace reclm
