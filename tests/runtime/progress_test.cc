// ProgressBar: the pure line renderer, and plain-line output when the stream is not a terminal
// (CI logs, files), which must carry no carriage returns or escape codes.
#include "runtime/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

namespace reclm {
namespace {

TEST(ProgressRender, StartShowsNoEta) {
  EXPECT_EQ(ProgressBar::render("train", 0, 100, 0.0, "", 10),
            "train [..........] 0/100   0% 0s eta --");
}

TEST(ProgressRender, MiddleShowsCountsPercentEtaAndStatus) {
  EXPECT_EQ(ProgressBar::render("train", 50, 100, 10.0, "loss 2.31", 10),
            "train [#####.....] 50/100  50% 10s eta 10s | loss 2.31");
}

TEST(ProgressRender, EndShowsDone) {
  EXPECT_EQ(ProgressBar::render("train", 100, 100, 65.0, "", 10),
            "train [##########] 100/100 100% 1m05s eta done");
}

TEST(ProgressRender, ZeroWidthHasNoBar) {
  const std::string line = ProgressBar::render("eval", 3, 4, 3.0, "", 0);
  EXPECT_EQ(line, "eval 3/4  75% 3s eta 1s");
  EXPECT_EQ(line.find('['), std::string::npos);
  EXPECT_EQ(line.find(']'), std::string::npos);
}

TEST(ProgressRender, BarFillsByWholeCells) {
  EXPECT_EQ(ProgressBar::render("x", 1, 3, 0.0, "", 10), "x [###.......] 1/3  33% 0s eta 0s");
}

TEST(ProgressRender, LongDurationsUseHoursAndMinutes) {
  // eta = 3725 s per item × 2 items left.
  EXPECT_EQ(ProgressBar::render("x", 1, 3, 3725.0, "", 0), "x 1/3  33% 1h02m eta 2h04m");
  EXPECT_EQ(ProgressBar::render("x", 1, 2, 59.6, "", 0), "x 1/2  50% 1m00s eta 1m00s");
}

TEST(ProgressRender, OvershootIsClampedAndDone) {
  EXPECT_EQ(ProgressBar::render("x", 12, 10, 1.0, "", 4), "x [####] 12/10 100% 1s eta done");
}

TEST(ProgressRender, ZeroTotalIsDone) {
  EXPECT_EQ(ProgressBar::render("x", 0, 0, 0.0, "", 4), "x [####] 0/0 100% 0s eta done");
}

// Everything written to `file` so far, split into lines (the trailing newline ends the last one).
std::vector<std::string> lines_of(std::FILE* file, std::string* raw = nullptr) {
  std::fflush(file);
  std::rewind(file);
  std::string text;
  char buffer[256];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
  if (raw) *raw = text;
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(text.substr(start, end - start));
  }
  EXPECT_EQ(start, text.size()) << "output does not end with a newline";
  return lines;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

TEST(ProgressBar, FilePrintsPlainLinesAndAFinalLine) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  {
    ProgressBar bar(4, "steps", file, /*plain_interval_s=*/0.0);
    EXPECT_FALSE(bar.is_terminal());
    bar.update(1, "loss 3.00");
    bar.update(2);
    bar.finish("loss 1.50");
    bar.finish("again");  // a second finish prints nothing
  }
  std::string raw;
  const std::vector<std::string> lines = lines_of(file, &raw);
  std::fclose(file);
  EXPECT_EQ(raw.find('\r'), std::string::npos);
  EXPECT_EQ(raw.find('\033'), std::string::npos);
  ASSERT_EQ(lines.size(), 3u) << raw;
  EXPECT_TRUE(starts_with(lines[0], "steps 1/4  25% ")) << lines[0];
  EXPECT_TRUE(ends_with(lines[0], " | loss 3.00")) << lines[0];
  EXPECT_TRUE(starts_with(lines[1], "steps 2/4  50% ")) << lines[1];
  EXPECT_EQ(lines[1].find('|'), std::string::npos) << lines[1];
  EXPECT_TRUE(starts_with(lines[2], "steps 4/4 100% ")) << lines[2];
  EXPECT_TRUE(ends_with(lines[2], " eta done | loss 1.50")) << lines[2];
}

TEST(ProgressBar, FileOutputIsThrottledButAlwaysFinishes) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  {
    ProgressBar bar(100, "load", file, /*plain_interval_s=*/1e9);
    for (int i = 1; i < 100; ++i) bar.update(i);  // only the first is printed
    bar.finish();
  }
  const std::vector<std::string> lines = lines_of(file);
  std::fclose(file);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(starts_with(lines[0], "load 1/100   1% ")) << lines[0];
  EXPECT_TRUE(starts_with(lines[1], "load 100/100 100% ")) << lines[1];
  EXPECT_TRUE(ends_with(lines[1], " eta done")) << lines[1];
}

TEST(ProgressBar, NothingDoneNothingPrintedUntilFinish) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  {
    ProgressBar bar(10, "idle", file, /*plain_interval_s=*/0.0);
    bar.update(0);
  }  // destroyed without finish: no line on a non-terminal
  const std::vector<std::string> lines = lines_of(file);
  std::fclose(file);
  EXPECT_TRUE(lines.empty());
}

}  // namespace
}  // namespace reclm
