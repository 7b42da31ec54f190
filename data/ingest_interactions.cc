#include "data/ingest_interactions.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/errors.h"

namespace reclm {

namespace {
std::string where(const std::string& path, int64_t line) { return fmt::format("{}:{}", path, line); }
}  // namespace

RawInteractions read_sequence_file(const std::string& path, bool progress, BadLines& bad_lines,
                                   IngestReport* report) {
  RawInteractions raw;
  KeyInterner users;
  KeyInterner items;
  LineReader reader(path, progress);
  std::vector<std::string_view> fields;
  std::string_view line;
  while (reader.next(&line)) {
    split_whitespace(line, &fields);
    if (fields.empty()) continue;
    ++report->lines_read;
    if (fields.size() < 2) {
      bad_lines.report(where(path, reader.line_number()), "a user with no items", line);
      continue;
    }
    const int32_t user = users.intern(fields[0]);
    for (size_t i = 1; i < fields.size(); ++i) {
      raw.users.push_back(user);
      raw.items.push_back(items.intern(fields[i]));
    }
  }
  raw.user_keys = users.release_keys();
  raw.item_keys = items.release_keys();
  return raw;
}

namespace {

struct ColumnCheck {
  const char* name;
  int column;
};

// The mapping is a configuration mistake when it does not fit the table: a UserError that names
// the option, not a malformed line.
void check_columns_fit(const std::string& path, int64_t line, size_t n_fields,
                       const TableFormat& format) {
  for (const ColumnCheck& c : {ColumnCheck{"user_column", format.user_column},
                               ColumnCheck{"item_column", format.item_column},
                               ColumnCheck{"rating_column", format.rating_column},
                               ColumnCheck{"timestamp_column", format.timestamp_column}}) {
    RECLM_USER_CHECK(c.column < static_cast<int>(n_fields),
                     "{}:{}: the table has {} columns but {} is {} (0-based); check the "
                     "delimiter and the column options",
                     path, line, n_fields, c.name, c.column);
  }
}

void check_format(const std::string& path, const TableFormat& format) {
  RECLM_USER_CHECK(format.user_column >= 0 && format.item_column >= 0,
                   "{}: user_column and item_column are required (got {} and {})", path,
                   format.user_column, format.item_column);
  RECLM_USER_CHECK(format.rating_column >= -1 && format.timestamp_column >= -1,
                   "{}: rating_column/timestamp_column must be a column index or -1 (got {} and {})",
                   path, format.rating_column, format.timestamp_column);
  RECLM_USER_CHECK(format.user_column != format.item_column,
                   "{}: user_column and item_column are both {}", path, format.user_column);
  RECLM_USER_CHECK(format.min_rating <= 0 || format.rating_column >= 0,
                   "{}: min_rating is {} but the table has no rating_column", path,
                   format.min_rating);
}

}  // namespace

RawInteractions read_interaction_table(const std::string& path, const TableFormat& format,
                                       bool progress, BadLines& bad_lines, IngestReport* report) {
  check_format(path, format);
  const std::string delimiter = resolve_delimiter(format.delimiter, path);
  RawInteractions raw;
  KeyInterner users;
  KeyInterner items;
  RecordReader reader(path, delimiter, progress);
  size_t n_columns = 0;  // fixed by the first record
  int64_t first_line = 0;
  bool header_pending = format.header;
  while (reader.next()) {
    if (header_pending) {
      RECLM_USER_CHECK(reader.error().empty(), "{}:{}: header: {}", path, reader.line(),
                       reader.error());
      n_columns = reader.fields().size();
      first_line = reader.line();
      check_columns_fit(path, reader.line(), n_columns, format);
      header_pending = false;
      continue;
    }
    ++report->lines_read;
    if (!reader.error().empty()) {
      bad_lines.report(where(path, reader.line()), reader.error(), reader.text());
      continue;
    }
    const auto& f = reader.fields();
    if (n_columns == 0) {
      n_columns = f.size();
      first_line = reader.line();
      check_columns_fit(path, reader.line(), n_columns, format);
    }
    if (f.size() != n_columns) {
      bad_lines.report(where(path, reader.line()),
                       fmt::format("expected {} fields (as line {}), found {}", n_columns,
                                   first_line, f.size()),
                       reader.text());
      continue;
    }
    const std::string_view user = trim(f[format.user_column]);
    const std::string_view item = trim(f[format.item_column]);
    if (user.empty() || item.empty()) {
      bad_lines.report(where(path, reader.line()),
                       fmt::format("empty {} id (column {})", user.empty() ? "user" : "item",
                                   user.empty() ? format.user_column : format.item_column),
                       reader.text());
      continue;
    }
    double rating = 0;
    if (format.rating_column >= 0 && !parse_double(f[format.rating_column], &rating)) {
      bad_lines.report(where(path, reader.line()),
                       fmt::format("rating (column {}) is not a number", format.rating_column),
                       reader.text());
      continue;
    }
    int64_t timestamp = 0;
    if (format.timestamp_column >= 0 && !parse_timestamp(f[format.timestamp_column], &timestamp)) {
      bad_lines.report(where(path, reader.line()),
                       fmt::format("timestamp (column {}) is not a number", format.timestamp_column),
                       reader.text());
      continue;
    }
    if (format.rating_column >= 0 && rating < format.min_rating) {
      ++report->below_min_rating;
      continue;
    }
    raw.users.push_back(users.intern(user));
    raw.items.push_back(items.intern(item));
    if (format.rating_column >= 0) raw.ratings.push_back(static_cast<float>(rating));
    if (format.timestamp_column >= 0) raw.timestamps.push_back(timestamp);
  }
  raw.user_keys = users.release_keys();
  raw.item_keys = items.release_keys();
  return raw;
}

}  // namespace reclm
