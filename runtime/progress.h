// Progress for long work. On a terminal: one line redrawn in place (bar, count, rate, ETA).
// Not a terminal (CI logs, files): a plain line at most every `plain_interval_s` seconds and
// one at the end, so logs stay readable and grep-able.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "runtime/timer.h"

namespace reclm {

class ProgressBar {
 public:
  ProgressBar(int64_t total, std::string label, std::FILE* out = stderr,
              double plain_interval_s = 10.0);
  ~ProgressBar();
  // `done` items finished of total; `status` is shown after the numbers (e.g. "loss 2.31").
  void update(int64_t done, const std::string& status = "");
  // Prints a log line on stdout (the run's story) above the bar; on a terminal the bar is cleared
  // first and redrawn below it, so the two never interleave.
  void print_above(const std::string& line);
  void finish(const std::string& status = "");
  bool is_terminal() const { return terminal_; }

  // The text of one progress line; pure, for tests.
  static std::string render(const std::string& label, int64_t done, int64_t total,
                            double elapsed_s, const std::string& status, int bar_width);

 private:
  int64_t total_;
  std::string label_;
  std::FILE* out_;
  bool terminal_;
  double plain_interval_s_;
  Stopwatch clock_;
  double last_draw_s_ = -1e9;
  int64_t last_done_ = 0;
  std::string last_status_;
  bool finished_ = false;
};

}  // namespace reclm
