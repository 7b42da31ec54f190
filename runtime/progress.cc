#include "runtime/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>

namespace reclm {

namespace {
std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}
}  // namespace

ProgressBar::ProgressBar(int64_t total, std::string label, std::FILE* out,
                         double plain_interval_s)
    : total_(std::max<int64_t>(total, 1)),
      label_(std::move(label)),
      out_(out),
      terminal_(isatty(fileno(out)) != 0),
      plain_interval_s_(plain_interval_s) {}

ProgressBar::~ProgressBar() {
  if (!finished_ && terminal_ && last_draw_s_ > -1e9) std::fputc('\n', out_);
}

std::string ProgressBar::render(const std::string& label, int64_t done, int64_t total,
                                double elapsed_s, const std::string& status, int bar_width) {
  // total <= 0 counts as complete (0/0 would be NaN, which std::clamp passes through).
  const double fraction =
      total > 0 ? std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0)
                : 1.0;
  std::string bar;
  if (bar_width > 0) {
    const int filled = static_cast<int>(fraction * bar_width);
    // Built by append: `"[" + std::string(...)` trips a false GCC 12 -Wrestrict error.
    bar.reserve(static_cast<size_t>(bar_width) + 3);
    bar += '[';
    bar.append(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(bar_width - filled), '.');
    bar += "] ";
  }
  std::string eta = "--";
  if (done > 0 && done < total) eta = format_duration(elapsed_s / done * (total - done));
  if (done >= total) eta = "done";
  return fmt::format("{} {}{}/{} {:3.0f}% {} eta {}{}{}", label, bar, done, total,
                     fraction * 100.0, format_duration(elapsed_s), eta,
                     status.empty() ? "" : " | ", status);
}

void ProgressBar::update(int64_t done, const std::string& status) {
  last_done_ = done;
  last_status_ = status;
  const double now = clock_.seconds();
  if (terminal_) {
    if (now - last_draw_s_ < 0.1 && done < total_) return;  // redraw at most 10 times a second
    std::fprintf(out_, "\r\033[K%s", render(label_, done, total_, now, status, 30).c_str());
    std::fflush(out_);
    last_draw_s_ = now;
  } else if (now - last_draw_s_ >= plain_interval_s_) {
    if (last_draw_s_ > -1e9 || done > 0) {
      std::fprintf(out_, "%s\n", render(label_, done, total_, now, status, 0).c_str());
      std::fflush(out_);
    }
    last_draw_s_ = now;
  }
}

void ProgressBar::print_above(const std::string& line) {
  if (terminal_) {
    std::fprintf(out_, "\r\033[K");
    std::fflush(out_);
  }
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
  if (terminal_ && last_draw_s_ > -1e9) {
    std::fprintf(out_, "%s", render(label_, last_done_, total_, clock_.seconds(), last_status_, 30).c_str());
    std::fflush(out_);
  }
}

void ProgressBar::finish(const std::string& status) {
  if (finished_) return;
  finished_ = true;
  const double now = clock_.seconds();
  const std::string text = render(label_, total_, total_, now, status, terminal_ ? 30 : 0);
  std::fprintf(out_, terminal_ ? "\r\033[K%s\n" : "%s\n", text.c_str());
  std::fflush(out_);
}

}  // namespace reclm
