// The device profile's bookkeeping (trainer/device/phase_clock.h) with RECLM_DEVICE_PROFILE=1: the
// first micro-batch (the set-up) is left out, each interval goes to the phase marked at its end,
// marks beyond the pending limit (forward-only work, no step start) are still added up, and the
// clock's own reading of its points has its own line.
// Emulator build only: there a stream point is the host clock (the launches before it have run),
// so sleeps between marks are the phases' times; the GPU build's points are CUDA events, and this
// file must not compile the header a second way into the GPU backend's binary.
#if defined(RECLM_DEVICE_TEST_EMU)

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <regex>
#include <string>
#include <thread>

#include "trainer/device/phase_clock.h"

namespace reclm::device {
namespace {

// The milliseconds of a phase's line in the report; -1 when it has none.
double phase_ms(const std::string& report, const std::string& phase) {
  std::smatch m;
  if (!std::regex_search(report, m, std::regex("\n  " + phase + " +([0-9.]+) ms"))) return -1.0;
  return std::stod(m[1]);
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

TEST(PhaseClock, LeavesOutTheFirstMicroBatchAndAddsUpEveryInterval) {
  ASSERT_EQ(setenv("RECLM_DEVICE_PROFILE", "1", 1), 0);
  PhaseClock clock;
  ASSERT_EQ(unsetenv("RECLM_DEVICE_PROFILE"), 0);
  ASSERT_TRUE(clock.on());
  clock.step_started();  // micro-batch 1: its 30 ms of "setup" are dropped
  sleep_ms(30);
  clock.mark("setup");
  clock.step_started();  // micro-batch 2
  sleep_ms(10);
  clock.mark("work");
  for (int i = 0; i < 5000; ++i) clock.mark("many");  // past the pending limit, no step start
  sleep_ms(10);
  clock.mark("many");
  clock.step_started();  // micro-batch 3
  sleep_ms(10);
  clock.mark("work");
  const std::string report = clock.report();
  SCOPED_TRACE(report);
  EXPECT_NE(report.find("over micro-batches 2-3 (the first, with the set-up, left out)"), std::string::npos);
  EXPECT_EQ(phase_ms(report, "setup"), 0.0);
  EXPECT_GE(phase_ms(report, "work"), 20.0);
  EXPECT_GE(phase_ms(report, "many"), 10.0);
  EXPECT_LT(phase_ms(report, "many"), 30.0);  // the dropped micro-batch's sleep is not in it
  // the clock's own reading of its points, at each step start and past the pending limit
  EXPECT_GE(phase_ms(report, "profile: reading its marks"), 0.0);
}

TEST(PhaseClock, HostModeReportsTheWaitShareWithoutPhases) {
  ASSERT_EQ(setenv("RECLM_DEVICE_PROFILE", "host", 1), 0);
  PhaseClock clock;
  ASSERT_EQ(unsetenv("RECLM_DEVICE_PROFILE"), 0);
  EXPECT_FALSE(clock.on());
  clock.step_started();
  clock.mark("work");
  clock.step_started();
  const std::string report = clock.report();
  EXPECT_NE(report.find("host waited for the device"), std::string::npos) << report;
  EXPECT_EQ(report.find("work"), std::string::npos) << report;
}

}  // namespace
}  // namespace reclm::device

#endif  // RECLM_DEVICE_TEST_EMU
