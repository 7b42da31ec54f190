// Test helper shared by every module's tests.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace reclm {

// The message of the `Error` that `body` throws; "" and a test failure when it throws none.
template <typename Error, typename Body>
std::string thrown_message(Body&& body) {
  try {
    body();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception of the asked-for type, none was thrown";
  return "";
}

}  // namespace reclm
