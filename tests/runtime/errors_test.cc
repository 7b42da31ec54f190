// The two failure kinds (DESIGN.md §3): RECLM_USER_CHECK raises UserError with exactly the
// user-facing message; RECLM_CHECK raises InternalError naming the file, line and condition.
#include "runtime/errors.h"

#include <gtest/gtest.h>

#include <string>

namespace reclm {
namespace {

TEST(UserCheck, ThrowsUserErrorWithTheFormattedMessage) {
  const int n_layers = 0;
  try {
    RECLM_USER_CHECK(n_layers > 0, "{}: field model.n_layers must be > 0 (got {})", "run.yaml",
                     n_layers);
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "run.yaml: field model.n_layers must be > 0 (got 0)");
  }
}

TEST(UserCheck, PassingCheckDoesNotEvaluateTheMessage) {
  int formatted = 0;
  auto count = [&] { return ++formatted; };
  RECLM_USER_CHECK(true, "{}", count());
  RECLM_CHECK(true, "{}", count());
  EXPECT_EQ(formatted, 0);
}

TEST(UserCheck, UserErrorIsNotAnInternalError) {
  EXPECT_THROW(RECLM_USER_CHECK(false, "bad input"), UserError);
  try {
    RECLM_USER_CHECK(false, "bad input");
  } catch (const InternalError&) {
    FAIL() << "a user error must not be caught as an internal error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "bad input");
  }
}

TEST(UserCheck, ThrowUserErrorFormats) {
  EXPECT_THROW(throw_user_error("{} of {}", 3, 4), UserError);
  try {
    throw_user_error("line {}: unknown key '{}'", 12, "lr");
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "line 12: unknown key 'lr'");
  }
}

TEST(Check, ThrowsInternalErrorNamingFileLineAndCondition) {
  const int x = 1;
  int line = 0;
  try {
    line = __LINE__ + 1;
    RECLM_CHECK(x == 2, "x was {}", x);
    FAIL() << "expected an InternalError";
  } catch (const InternalError& e) {
    const std::string message = e.what();
    EXPECT_PRED_FORMAT2(testing::IsSubstring, "errors_test.cc:" + std::to_string(line), message);
    EXPECT_PRED_FORMAT2(testing::IsSubstring, "`x == 2`", message);
    EXPECT_PRED_FORMAT2(testing::IsSubstring, "x was 1", message);
  }
}

TEST(Check, InternalErrorIsNotAUserError) {
  EXPECT_THROW(RECLM_CHECK(false, "broken"), InternalError);
  try {
    RECLM_CHECK(false, "broken");
  } catch (const UserError&) {
    FAIL() << "an internal error must not be caught as a user error";
  } catch (const std::runtime_error&) {
  }
}

TEST(Check, MacrosAreSingleStatements) {
  // do { } while (0): usable as the body of an unbraced if/else.
  bool reached_else = false;
  if (false)
    RECLM_CHECK(false, "unreachable");
  else
    reached_else = true;
  if (false)
    RECLM_USER_CHECK(false, "unreachable");
  else
    reached_else = reached_else && true;
  EXPECT_TRUE(reached_else);
}

TEST(ExitCodes, MatchTheDesign) {
  EXPECT_EQ(kExitOk, 0);
  EXPECT_EQ(kExitInternal, 1);
  EXPECT_EQ(kExitUserError, 2);
}

}  // namespace
}  // namespace reclm
