// Test helper shared by every module's tests: per-test scratch directories under the system temp
// directory, named so that concurrent runs (ctest -j, other build trees) never share one.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

namespace reclm {

// temp_directory_path()/reclm_<name>_<pid>, removed with all it holds but not created: for
// callers that let the code under test create the directory (a run dir, a checkpoint root).
inline std::filesystem::path cleared_test_path(const std::string& name) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("reclm_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(path);
  return path;
}

// The same path as cleared_test_path(name), created empty.
inline std::filesystem::path fresh_test_dir(const std::string& name) {
  const std::filesystem::path dir = cleared_test_path(name);
  std::filesystem::create_directories(dir);
  return dir;
}

// A fixture whose every test gets its own empty `dir_` (reclm_<suite>_<test>_<pid>), removed
// after the test. A fixture that needs more setup calls ScratchDirTest::SetUp() first.
class ScratchDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    // Parameterized tests are named "Prefix/Suite" and "Test/0": keep the directory one level.
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = fresh_test_dir(name);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

}  // namespace reclm
