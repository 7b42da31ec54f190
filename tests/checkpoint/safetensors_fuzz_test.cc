// Fuzz-style robustness of the safetensors reader: 2000 damaged copies of a valid file
// (flipped header bytes, truncations, absurd header lengths, mangled JSON tokens) must each either
// read back consistently or be refused with a UserError — never another exception type, a crash,
// or a read outside the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "runtime/errors.h"

namespace reclm {
namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_all(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Opens and reads every tensor. Returns "ok", "user error"; anything else fails the test.
std::string try_read(const fs::path& path) {
  try {
    const SafetensorsFile file = SafetensorsFile::open(path);
    for (const std::string& name : file.names()) {
      const std::vector<uint8_t> bytes = file.read_bytes(name);
      EXPECT_LE(bytes.size(), fs::file_size(path)) << name;
      if (file.dtype(name) == "F32" || file.dtype(name) == "BF16" || file.dtype(name) == "F16") {
        EXPECT_EQ(file.read_f32(name).size(), static_cast<size_t>(file.element_count(name)));
      }
    }
    return "ok";
  } catch (const UserError&) {
    return "user error";
  }
}

TEST(SafetensorsFuzz, DamagedFilesAreReadConsistentlyOrRefusedWithAUserError) {
  const fs::path dir = fs::temp_directory_path() / ("reclm_st_fuzz_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::vector<float> a(3 * 5), b(7), c(2 * 2 * 3);
  for (size_t i = 0; i < a.size(); ++i) a[i] = 0.25f * static_cast<float>(i) - 1.0f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i * i) + 0.5f;
  for (size_t i = 0; i < c.size(); ++i) c[i] = -static_cast<float>(i) / 3.0f;
  const fs::path valid = dir / "valid.safetensors";
  write_safetensors(valid, {{"model.a.weight", {3, 5}, a.data(), DType::kF32},
                            {"model.b.weight", {7}, b.data(), DType::kBF16},
                            {"c", {2, 2, 3}, c.data(), DType::kF16}},
                    {{"format", "pt"}});
  const std::string original = read_all(valid);
  ASSERT_EQ(try_read(valid), "ok");
  const uint64_t header_len = *reinterpret_cast<const uint64_t*>(original.data());
  const size_t header_end = 8 + header_len;

  std::mt19937_64 rng(20261126);
  const fs::path damaged = dir / "damaged.safetensors";
  int refused = 0, accepted = 0;
  const std::string tokens = "{}[],:\"0123456789-eE.";
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes = original;
    switch (trial % 4) {
      case 0: {  // flip 1-3 bytes in the length field or the JSON header
        const int flips = 1 + static_cast<int>(rng() % 3);
        for (int f = 0; f < flips; ++f) bytes[rng() % header_end] ^= static_cast<char>(1 + rng() % 255);
        break;
      }
      case 1:  // truncate anywhere
        bytes.resize(rng() % bytes.size());
        break;
      case 2: {  // an absurd or slightly-off header length
        const uint64_t choices[] = {0, 1, 7, header_len - 1, header_len + 1, header_len + 8,
                                    uint64_t{1} << 40, ~uint64_t{0}, rng()};
        const uint64_t len = choices[rng() % std::size(choices)];
        std::memcpy(bytes.data(), &len, sizeof len);
        break;
      }
      default: {  // replace one JSON character by another structural or numeric one
        const size_t at = 8 + rng() % header_len;
        bytes[at] = tokens[rng() % tokens.size()];
        break;
      }
    }
    write_all(damaged, bytes);
    const std::string outcome = try_read(damaged);
    (outcome == "ok" ? accepted : refused) += 1;
  }
  // Most damage is refused; the rest (e.g. a changed digit inside a value) still reads in bounds.
  EXPECT_GT(refused, 1700);
  std::printf("2000 damaged files: %d refused with a UserError, %d read consistently\n", refused,
              accepted);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace reclm
