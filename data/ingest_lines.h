// Line-level reading for `reclm prepare` (data/ingest.h): a buffered line reader with a progress
// bar over bytes, delimited-field splitting (RFC 4180 quoting for CSV), number parsing, string
// interning and the malformed-line policy. Internal to data/ingest*.cc.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace reclm {

class ProgressBar;

// Inputs above this size show a progress bar over bytes read (when progress is asked for).
constexpr int64_t kProgressMinBytes = 50ll << 20;

// Reads a text file line by line through a large buffer: no allocation per line. Lines come back
// without their "\n" or "\r\n"; a last line without a newline still counts.
class LineReader {
 public:
  // UserError naming the file when it cannot be opened.
  LineReader(const std::string& path, bool progress);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line (valid until the next call); false at the end of the file.
  bool next(std::string_view* line);
  int64_t line_number() const { return line_number_; }  // 1-based, of the line last returned
  const std::string& path() const { return path_; }

 private:
  bool refill();  // false when nothing more could be read

  std::string path_;
  std::FILE* file_ = nullptr;
  std::vector<char> buffer_;
  size_t begin_ = 0;  // unread bytes are buffer_[begin_, end_)
  size_t end_ = 0;
  bool eof_ = false;
  int64_t line_number_ = 0;
  int64_t bytes_read_ = 0;
  std::unique_ptr<ProgressBar> progress_;
};

// The delimiter a table option names: "auto" picks by the file's extension ("::" for .dat, tab
// for .tsv/.tab/.data, "," otherwise); "\t" (backslash-t) and "tab" mean a tab.
std::string resolve_delimiter(const std::string& option, const std::string& path);

// Whether fields may be double-quoted (RFC 4180): for single-character delimiters other than tab
// and space, i.e. CSV-like files. TSV, "::" and whitespace files are split literally, because a
// quote at the start of a title there is just text.
bool delimiter_allows_quotes(std::string_view delimiter);

// Splits `line` at every `delimiter` into `fields` (views into `line` or into `scratch`).
// With `quoted`: a field that starts with '"' runs to the closing quote, may contain the
// delimiter, line breaks and "" (one quote); a quote inside an unquoted field is plain text.
// Returns "" on success, else what is wrong ("unterminated quoted field", ...).
std::string split_fields(std::string_view line, std::string_view delimiter, bool quoted,
                         std::vector<std::string_view>* fields, std::string* scratch);

// Splits at runs of spaces and tabs (sequence files); no empty fields.
void split_whitespace(std::string_view line, std::vector<std::string_view>* fields);

std::string_view trim(std::string_view s);

// Whole-field numbers (after trimming); false when the field is not entirely a number.
// Timestamps accept integers and decimals (rounded down: "978300760.0").
bool parse_int64(std::string_view field, int64_t* value);
bool parse_timestamp(std::string_view field, int64_t* value);
bool parse_double(std::string_view field, double* value);

// Reads delimited records, one per line, except that in quoted mode a record whose quoted field
// is still open continues on the next line (RFC 4180 allows line breaks inside quotes).
class RecordReader {
 public:
  RecordReader(const std::string& path, std::string_view delimiter, bool progress);

  // The next non-blank record; false at the end. On a split error, `error` is non-empty and
  // `fields` must not be used.
  bool next();
  int64_t line() const { return line_; }        // line where the record starts
  std::string_view text() const { return text_; }  // the raw record (for messages)
  const std::vector<std::string_view>& fields() const { return fields_; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return lines_.path(); }

 private:
  LineReader lines_;
  std::string delimiter_;
  bool quoted_;
  int64_t line_ = 0;
  std::string_view text_;
  std::string joined_;  // a record spanning lines
  std::string scratch_;
  std::vector<std::string_view> fields_;
  std::string error_;
};

// The policy for malformed lines: throw a UserError "WHERE: WHAT: TEXT" (the default), or count
// it and warn for the first few (skip_bad_lines).
class BadLines {
 public:
  BadLines(bool skip, int64_t* counter) : skip_(skip), counter_(counter) {}
  void report(const std::string& where, std::string_view what, std::string_view text);

 private:
  bool skip_;
  int64_t* counter_;
};

// Line text for messages: at most ~200 bytes, cut on a UTF-8 boundary, "..." when cut.
std::string shorten_for_message(std::string_view text);

// Interning of id strings to dense ids in first-appearance order. An open-addressing table of
// (hash, id) slots over the key vector: a lookup touches one slot and one key, where a node-based
// std::unordered_map touches three places (it dominated the time of reading a large table).
class KeyInterner {
 public:
  // The id of `key`, adding it (as the next id) when new.
  int32_t intern(std::string_view key);
  // -1 when absent.
  int32_t find(std::string_view key) const;
  const std::vector<std::string>& keys() const { return keys_; }
  // Hands the keys over; the interner is empty afterwards.
  std::vector<std::string> release_keys();

 private:
  struct Slot {
    uint64_t hash = 0;
    int32_t id = -1;  // -1: empty
  };
  size_t slot_of(std::string_view key, uint64_t hash) const;  // the key's slot or an empty one
  void grow();

  std::vector<Slot> slots_;  // size a power of two, at most half full
  std::vector<std::string> keys_;
  int32_t last_id_ = -1;  // the key interned last
};

}  // namespace reclm
