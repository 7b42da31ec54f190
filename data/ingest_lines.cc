#include "data/ingest_lines.h"

#include <xxhash.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "runtime/errors.h"
#include "runtime/logging.h"
#include "runtime/progress.h"

namespace reclm {

namespace {
constexpr size_t kReadChunk = 1 << 20;
constexpr int kWarnFirstBadLines = 5;
constexpr size_t kMessageTextBytes = 200;
// A quoted field may span lines, but an unclosed quote must not swallow the rest of the file.
constexpr size_t kMaxRecordBytes = 1 << 20;
constexpr const char* kUnterminatedQuote = "unterminated quoted field";

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}
}  // namespace

// ---- LineReader ------------------------------------------------------------------------------

LineReader::LineReader(const std::string& path, bool progress) : path_(path) {
  file_ = std::fopen(path.c_str(), "rb");
  RECLM_USER_CHECK(file_ != nullptr, "cannot open {}: {}", path, std::strerror(errno));
  buffer_.resize(kReadChunk);
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (progress && !ec && static_cast<int64_t>(size) > kProgressMinBytes) {
    progress_ = std::make_unique<ProgressBar>(static_cast<int64_t>(size), "reading " + path);
  }
}

LineReader::~LineReader() {
  if (file_ != nullptr) std::fclose(file_);
}

bool LineReader::refill() {
  if (eof_) return false;
  // Keep the unread tail at the front; grow when one line fills the whole buffer.
  std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
  if (buffer_.size() - end_ < kReadChunk / 2) buffer_.resize(buffer_.size() * 2);
  const size_t got = std::fread(buffer_.data() + end_, 1, buffer_.size() - end_, file_);
  RECLM_USER_CHECK(!std::ferror(file_), "error reading {}: {}", path_, std::strerror(errno));
  if (got == 0) eof_ = true;
  end_ += got;
  bytes_read_ += static_cast<int64_t>(got);
  if (progress_) {
    if (eof_) {
      progress_->finish();
    } else {
      progress_->update(bytes_read_);
    }
  }
  return got > 0;
}

bool LineReader::next(std::string_view* line) {
  for (;;) {
    const char* start = buffer_.data() + begin_;
    const auto* newline = static_cast<const char*>(std::memchr(start, '\n', end_ - begin_));
    if (newline != nullptr || (eof_ && begin_ < end_)) {
      const size_t length = newline != nullptr ? static_cast<size_t>(newline - start) : end_ - begin_;
      begin_ += newline != nullptr ? length + 1 : length;
      *line = std::string_view(start, length);
      if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
      // A UTF-8 byte order mark (spreadsheet exports) is not part of the first field.
      if (line_number_ == 0 && line->starts_with("\xEF\xBB\xBF")) line->remove_prefix(3);
      ++line_number_;
      return true;
    }
    if (!refill() && begin_ == end_) return false;
  }
}

// ---- fields ----------------------------------------------------------------------------------

std::string resolve_delimiter(const std::string& option, const std::string& path) {
  if (option == "\\t" || option == "tab") return "\t";
  if (option != "auto") return option;
  const std::string ext = lower_extension(path);
  if (ext == ".dat") return "::";
  if (ext == ".tsv" || ext == ".tab" || ext == ".data") return "\t";
  return ",";
}

bool delimiter_allows_quotes(std::string_view delimiter) {
  return delimiter.size() == 1 && delimiter[0] != '\t' && delimiter[0] != ' ';
}

std::string split_fields(std::string_view line, std::string_view delimiter, bool quoted,
                         std::vector<std::string_view>* fields, std::string* scratch) {
  fields->clear();
  scratch->clear();
  // Unquoting only ever shrinks text, so the views into scratch never move.
  if (quoted) scratch->reserve(line.size());
  size_t pos = 0;
  for (;;) {
    if (quoted && pos < line.size() && line[pos] == '"') {
      const size_t begin = scratch->size();
      size_t i = pos + 1;
      for (;;) {
        if (i >= line.size()) return kUnterminatedQuote;
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {  // "" is one quote
            scratch->push_back('"');
            i += 2;
            continue;
          }
          break;
        }
        scratch->push_back(line[i++]);
      }
      fields->emplace_back(scratch->data() + begin, scratch->size() - begin);
      pos = i + 1;  // just after the closing quote: a delimiter or the end must follow
      if (pos == line.size()) return "";
      if (line.compare(pos, delimiter.size(), delimiter) != 0) {
        return "text after the closing quote of field " + std::to_string(fields->size());
      }
      pos += delimiter.size();
      continue;
    }
    const size_t next = line.find(delimiter, pos);
    if (next == std::string_view::npos) {
      fields->push_back(line.substr(pos));
      return "";
    }
    fields->push_back(line.substr(pos, next - pos));
    pos = next + delimiter.size();
  }
}

void split_whitespace(std::string_view line, std::vector<std::string_view>* fields) {
  fields->clear();
  size_t pos = 0;
  while (pos < line.size()) {
    while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
    size_t end = pos;
    while (end < line.size() && line[end] != ' ' && line[end] != '\t') ++end;
    if (end > pos) fields->push_back(line.substr(pos, end - pos));
    pos = end;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool parse_int64(std::string_view field, int64_t* value) {
  field = trim(field);
  if (!field.empty() && field.front() == '+') field.remove_prefix(1);
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), *value);
  return !field.empty() && ec == std::errc() && end == field.data() + field.size();
}

bool parse_double(std::string_view field, double* value) {
  field = trim(field);
  if (!field.empty() && field.front() == '+') field.remove_prefix(1);
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), *value);
  return !field.empty() && ec == std::errc() && end == field.data() + field.size() &&
         std::isfinite(*value);
}

bool parse_timestamp(std::string_view field, int64_t* value) {
  if (parse_int64(field, value)) return true;
  double d = 0;
  if (!parse_double(field, &d)) return false;
  if (std::abs(d) >= 9.2e18) return false;
  *value = static_cast<int64_t>(std::floor(d));
  return true;
}

// ---- RecordReader ----------------------------------------------------------------------------

RecordReader::RecordReader(const std::string& path, std::string_view delimiter, bool progress)
    : lines_(path, progress), delimiter_(delimiter), quoted_(delimiter_allows_quotes(delimiter)) {
  RECLM_USER_CHECK(!delimiter_.empty(), "{}: the delimiter is empty", path);
}

bool RecordReader::next() {
  std::string_view line;
  do {
    if (!lines_.next(&line)) return false;
  } while (trim(line).empty());
  line_ = lines_.line_number();
  text_ = line;
  error_ = split_fields(text_, delimiter_, quoted_, &fields_, &scratch_);
  // An open quote continues on the next line; the record is then copied into joined_.
  if (error_ == kUnterminatedQuote) {
    joined_.assign(line);  // before reading on: that reuses the buffer `line` points into
    text_ = joined_;
    std::string_view more;
    while (joined_.size() < kMaxRecordBytes && lines_.next(&more)) {
      joined_.push_back('\n');
      joined_.append(more);
      text_ = joined_;
      error_ = split_fields(text_, delimiter_, quoted_, &fields_, &scratch_);
      if (error_ != kUnterminatedQuote) break;
    }
  }
  return true;
}

// ---- bad lines -------------------------------------------------------------------------------

std::string shorten_for_message(std::string_view text) {
  if (text.size() <= kMessageTextBytes) return std::string(text);
  size_t cut = kMessageTextBytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "...";
}

void BadLines::report(const std::string& where, std::string_view what, std::string_view text) {
  const std::string message = fmt::format("{}: {}: {}", where, what, shorten_for_message(text));
  if (!skip_) throw UserError(message);
  ++*counter_;
  if (*counter_ <= kWarnFirstBadLines) log_warn("skipping malformed line {}", message);
  if (*counter_ == kWarnFirstBadLines) log_warn("(further malformed lines are counted silently)");
}

// ---- interning -------------------------------------------------------------------------------

size_t KeyInterner::slot_of(std::string_view key, uint64_t hash) const {
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {  // linear probing
    const Slot& slot = slots_[i];
    if (slot.id < 0 || (slot.hash == hash && keys_[slot.id] == key)) return i;
  }
}

void KeyInterner::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(std::max<size_t>(old.size() * 2, 1024), Slot());
  const size_t mask = slots_.size() - 1;
  for (const Slot& slot : old) {
    if (slot.id < 0) continue;
    size_t i = slot.hash & mask;
    while (slots_[i].id >= 0) i = (i + 1) & mask;
    slots_[i] = slot;
  }
}

int32_t KeyInterner::intern(std::string_view key) {
  // Logs are often grouped by user: the same key again costs one comparison on a cached string.
  if (last_id_ >= 0 && keys_[last_id_] == key) return last_id_;
  if (2 * (keys_.size() + 1) > slots_.size()) grow();
  const uint64_t hash = XXH3_64bits(key.data(), key.size());
  Slot& slot = slots_[slot_of(key, hash)];
  if (slot.id >= 0) return last_id_ = slot.id;
  RECLM_USER_CHECK(keys_.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max()),
                   "more than 2^31 distinct ids");
  slot = {hash, static_cast<int32_t>(keys_.size())};
  keys_.emplace_back(key);
  return last_id_ = slot.id;
}

int32_t KeyInterner::find(std::string_view key) const {
  if (slots_.empty()) return -1;
  return slots_[slot_of(key, XXH3_64bits(key.data(), key.size()))].id;
}

std::vector<std::string> KeyInterner::release_keys() {
  std::vector<std::string> keys = std::move(keys_);
  keys_.clear();
  slots_.clear();
  last_id_ = -1;
  return keys;
}

}  // namespace reclm
