#include "checkpoint/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "runtime/errors.h"
#include "scratch_dir.h"
#include "thrown_message.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;

class SafetensorsTest : public ScratchDirTest {};

// n floats with varied magnitudes and signs, so roundings and exponents differ.
std::vector<float> varied_values(size_t n, float scale = 1.0f) {
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) {
    values[i] = scale * std::sin(0.7f * static_cast<float>(i) + 0.1f) *
                std::pow(3.0f, static_cast<float>(i % 9) - 4.0f);
  }
  return values;
}

uint32_t bits_of(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, 4);
  return bits;
}

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A hand-built file: the 8-byte length of `header` (or `declared_length`), then header, then
// `buffer_bytes` zero bytes.
void write_raw(const fs::path& path, const std::string& header, size_t buffer_bytes,
               uint64_t declared_length = UINT64_MAX) {
  const uint64_t length = declared_length == UINT64_MAX ? header.size() : declared_length;
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&length), 8);
  out << header << std::string(buffer_bytes, '\0');
}

std::string open_error(const fs::path& path) {
  return thrown_message<UserError>([&] { SafetensorsFile::open(path); });
}

TEST_F(SafetensorsTest, F32RoundTripIsBitExactForOddShapes) {
  std::vector<float> a = varied_values(3 * 5 * 7);
  a[0] = -0.0f;
  a[1] = std::numeric_limits<float>::infinity();
  a[2] = std::numeric_limits<float>::denorm_min();
  a[3] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> b = varied_values(13, 100.0f);
  const fs::path path = dir_ / "model.safetensors";
  write_safetensors(path, {{"model.a", {3, 5, 7}, a.data(), DType::kF32},
                           {"lm_head.weight", {13}, b.data(), DType::kF32}});

  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"lm_head.weight", "model.a"}));
  EXPECT_EQ(file.dtype("model.a"), "F32");
  EXPECT_EQ(file.shape("model.a"), (std::vector<int64_t>{3, 5, 7}));
  EXPECT_EQ(file.element_count("model.a"), 105);
  const std::vector<float> read_a = file.read_f32("model.a");
  ASSERT_EQ(read_a.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(bits_of(read_a[i]), bits_of(a[i])) << i;
  const std::vector<float> read_b = file.read_f32("lm_head.weight");
  ASSERT_EQ(read_b.size(), b.size());
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(bits_of(read_b[i]), bits_of(b[i])) << i;
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
}

TEST_F(SafetensorsTest, Bf16AndF16StoreTheRoundedToNearestEvenValues) {
  std::vector<float> values = varied_values(2 * 9 * 3, 7.0f);
  values[0] = 1.0f + 0x1.0p-8f;  // exactly halfway between two bf16 values: rounds to even (1.0)
  const fs::path path = dir_ / "half.safetensors";
  write_safetensors(path, {{"w.bf16", {2, 9, 3}, values.data(), DType::kBF16},
                           {"w.f16", {54}, values.data(), DType::kF16}});

  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.dtype("w.bf16"), "BF16");
  EXPECT_EQ(file.dtype("w.f16"), "F16");
  EXPECT_EQ(file.read_bytes("w.bf16").size(), 54u * 2);
  const std::vector<float> bf16 = file.read_f32("w.bf16");
  const std::vector<float> f16 = file.read_f32("w.f16");
  ASSERT_EQ(bf16.size(), values.size());
  EXPECT_EQ(bf16[0], 1.0f);
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(bits_of(bf16[i]), bits_of(bf16_to_f32(f32_to_bf16(values[i])))) << i;
    EXPECT_EQ(bits_of(f16[i]), bits_of(f16_to_f32(f32_to_f16(values[i])))) << i;
  }
}

TEST_F(SafetensorsTest, ScalarAndEmptyTensorsRoundTrip) {
  const float scalar = 2.5f;
  const fs::path path = dir_ / "edge.safetensors";
  write_safetensors(path, {{"empty", {0, 4}, nullptr, DType::kBF16},
                           {"scalar", {}, &scalar, DType::kF32},
                           {"also_empty", {0}, nullptr, DType::kF32}});

  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_TRUE(file.shape("scalar").empty());
  EXPECT_EQ(file.element_count("scalar"), 1);
  EXPECT_EQ(file.read_f32("scalar"), std::vector<float>{2.5f});
  EXPECT_EQ(file.shape("empty"), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(file.element_count("empty"), 0);
  EXPECT_TRUE(file.read_f32("empty").empty());
  EXPECT_TRUE(file.read_f32("also_empty").empty());
}

TEST_F(SafetensorsTest, MetadataRoundTripsAndIsOmittedWhenEmpty) {
  const float x = 1.0f;
  const fs::path with = dir_ / "with.safetensors";
  const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                       {"reclm.step", "1000"},
                                                       {"note", "ünïcode \"quoted\""}};
  write_safetensors(with, {{"x", {1}, &x, DType::kF32}}, metadata);
  EXPECT_EQ(SafetensorsFile::open(with).metadata(), metadata);
  EXPECT_EQ(SafetensorsFile::open(with).names(), std::vector<std::string>{"x"});

  const fs::path without = dir_ / "without.safetensors";
  write_safetensors(without, {{"x", {1}, &x, DType::kF32}});
  EXPECT_TRUE(SafetensorsFile::open(without).metadata().empty());
  EXPECT_EQ(read_all(without).find("__metadata__"), std::string::npos);
}

TEST_F(SafetensorsTest, HeaderIsPaddedSoTheBufferIsEightByteAligned) {
  const fs::path path = dir_ / "pad.safetensors";
  const std::vector<float> values = varied_values(5);
  for (const std::string name : {"a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "ab.c"}) {
    write_safetensors(path, {{name, {5}, values.data(), DType::kF32}});
    const std::string bytes = read_all(path);
    uint64_t header_size = 0;
    std::memcpy(&header_size, bytes.data(), 8);
    EXPECT_EQ(header_size % 8, 0u) << name;
    EXPECT_EQ(bytes.size(), 8 + header_size + 5 * 4) << name;
    EXPECT_EQ(bytes[8], '{');
    const std::string header = bytes.substr(8, header_size);
    EXPECT_EQ(header.substr(0, header.find_last_not_of(' ') + 1).back(), '}') << name;
    EXPECT_EQ(SafetensorsFile::open(path).read_f32(name), values);
  }
}

TEST_F(SafetensorsTest, OverwriteIsAtomicAndAMissingDirectoryIsAUserError) {
  const fs::path path = dir_ / "model.safetensors";
  const float one = 1.0f;
  const float two = 2.0f;
  write_safetensors(path, {{"x", {}, &one, DType::kF32}});
  write_safetensors(path, {{"x", {}, &two, DType::kF32}});
  EXPECT_EQ(SafetensorsFile::open(path).read_f32("x"), std::vector<float>{2.0f});
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));

  const fs::path missing = dir_ / "no_such_dir" / "model.safetensors";
  const std::string message = thrown_message<UserError>(
      [&] { write_safetensors(missing, {{"x", {}, &one, DType::kF32}}); });
  EXPECT_NE(message.find(missing.string()), std::string::npos) << message;
}

TEST_F(SafetensorsTest, DuplicateEntryNamesAreABugOfTheCaller) {
  const float x = 1.0f;
  EXPECT_THROW(write_safetensors(dir_ / "d.safetensors",
                                 {{"x", {}, &x, DType::kF32}, {"x", {}, &x, DType::kF32}}),
               InternalError);
}

TEST_F(SafetensorsTest, ShortOrTruncatedFilesAreUserErrorsNamingTheFile) {
  const fs::path tiny = dir_ / "tiny.safetensors";
  std::ofstream(tiny, std::ios::binary) << "abc";
  std::string message = open_error(tiny);
  EXPECT_NE(message.find(tiny.string()), std::string::npos) << message;
  EXPECT_NE(message.find("shorter than"), std::string::npos) << message;

  const fs::path beyond = dir_ / "beyond.safetensors";
  write_raw(beyond, "{}", 0, /*declared_length=*/1000);
  message = open_error(beyond);
  EXPECT_NE(message.find(beyond.string()), std::string::npos) << message;
  EXPECT_NE(message.find("beyond the end"), std::string::npos) << message;

  const fs::path missing = dir_ / "missing.safetensors";
  EXPECT_NE(open_error(missing).find(missing.string()), std::string::npos);
}

TEST_F(SafetensorsTest, InvalidJsonIsAUserError) {
  const fs::path path = dir_ / "json.safetensors";
  write_raw(path, R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})", 4);
  const std::string message = open_error(path);
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;
}

// Each malformed tensor entry must be refused with the file and the tensor named.
TEST_F(SafetensorsTest, MalformedTensorEntriesNameTheFileAndTensor) {
  struct Case {
    const char* what;
    std::string header;
    size_t buffer_bytes;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"unknown dtype", R"({"w.bad": {"dtype": "F17", "shape": [1], "data_offsets": [0, 4]}})",
       4, "unknown dtype 'F17'"},
      {"out of range", R"({"w.bad": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
       4, "out of range"},
      {"size mismatch", R"({"w.bad": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})",
       8, "needs 12"},
      {"overlap", R"({"w.a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "w.bad": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
       8, "overlaps"},
      {"gap", R"({"w.a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                  "w.bad": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
       12, "gap"},
      {"negative dim", R"({"w.bad": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}})",
       0, "non-negative"},
      {"missing offsets", R"({"w.bad": {"dtype": "F32", "shape": [1]}})", 4, "data_offsets"},
      {"duplicate", R"({"w.bad": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                        "w.bad": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
       8, "twice"},
  };
  for (const Case& c : cases) {
    const fs::path path = dir_ / "bad.safetensors";
    write_raw(path, c.header, c.buffer_bytes);
    const std::string message = open_error(path);
    EXPECT_NE(message.find(path.string()), std::string::npos) << c.what << ": " << message;
    EXPECT_NE(message.find("w.bad"), std::string::npos) << c.what << ": " << message;
    EXPECT_NE(message.find(c.expected), std::string::npos) << c.what << ": " << message;
  }
}

TEST_F(SafetensorsTest, TrailingBytesAndBadMetadataAreRefused) {
  const fs::path path = dir_ / "bad.safetensors";
  write_raw(path, R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 8);
  EXPECT_NE(open_error(path).find("trailing"), std::string::npos);
  write_raw(path, R"({"__metadata__": {"step": 5}})", 0);
  EXPECT_NE(open_error(path).find("must be a string"), std::string::npos);
  write_raw(path, R"([1, 2])", 0);
  EXPECT_NE(open_error(path).find("JSON object"), std::string::npos);
}

TEST_F(SafetensorsTest, MissingTensorAndNonFloatDtypeAreUserErrors) {
  const fs::path path = dir_ / "ints.safetensors";
  write_raw(path, R"({"ids": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}})", 16);
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.dtype("ids"), "I64");
  EXPECT_EQ(file.read_bytes("ids"), std::vector<uint8_t>(16, 0));
  std::string message = thrown_message<UserError>([&] { file.read_f32("ids"); });
  EXPECT_NE(message.find("ids"), std::string::npos) << message;
  EXPECT_NE(message.find("I64"), std::string::npos) << message;
  message = thrown_message<UserError>([&] { file.shape("nope"); });
  EXPECT_NE(message.find("tensor nope: missing"), std::string::npos) << message;
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
}

// Hugging Face's own reader must accept our file, and we must read its file: Python loads ours,
// checks dtypes and shapes, and saves the same tensors back; ours and its must hold equal values.
// BF16 is left out: numpy has no bfloat16, so safetensors.numpy cannot load it.
TEST_F(SafetensorsTest, PythonSafetensorsReadsOurFileAndWeReadItsFile) {
  if (std::system("python3 -c 'import safetensors.numpy, numpy' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3 with safetensors and numpy is not installed";
  }
  const std::vector<float> a = varied_values(3 * 5);
  const std::vector<float> b = varied_values(7, 9.0f);
  const float scalar = -4.25f;
  const fs::path ours = dir_ / "ours.safetensors";
  const fs::path theirs = dir_ / "theirs.safetensors";
  write_safetensors(ours, {{"a", {3, 5}, a.data(), DType::kF32},
                           {"b", {7}, b.data(), DType::kF16},
                           {"s", {}, &scalar, DType::kF32}},
                    {{"format", "np"}});
  const fs::path script = dir_ / "check.py";
  std::ofstream(script) << "import sys\n"
                           "from safetensors import safe_open\n"
                           "from safetensors.numpy import load_file, save_file\n"
                           "t = load_file(sys.argv[1])\n"
                           "assert t['a'].dtype.name == 'float32' and t['a'].shape == (3, 5)\n"
                           "assert t['b'].dtype.name == 'float16' and t['b'].shape == (7,)\n"
                           "assert t['s'].shape == ()\n"
                           "with safe_open(sys.argv[1], 'np') as f:\n"
                           "    assert f.metadata() == {'format': 'np'}, f.metadata()\n"
                           "save_file(t, sys.argv[2], metadata={'from': 'python'})\n";
  const std::string command =
      "python3 " + script.string() + " " + ours.string() + " " + theirs.string();
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  const SafetensorsFile mine = SafetensorsFile::open(ours);
  const SafetensorsFile python = SafetensorsFile::open(theirs);
  EXPECT_EQ(python.metadata().at("from"), "python");
  for (const std::string name : {"a", "b", "s"}) {
    EXPECT_EQ(python.dtype(name), mine.dtype(name)) << name;
    EXPECT_EQ(python.shape(name), mine.shape(name)) << name;
    EXPECT_EQ(python.read_bytes(name), mine.read_bytes(name)) << name;
  }
}

}  // namespace
}  // namespace reclm
