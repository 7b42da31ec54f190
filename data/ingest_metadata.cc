#include "data/ingest_metadata.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/errors.h"

namespace reclm {

using nlohmann::json;

namespace {

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string extension_of(const std::string& path) {
  return lowercase(std::filesystem::path(path).extension().string());
}

json parse_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RECLM_USER_CHECK(in.good(), "cannot open {}", path);
  std::stringstream text;  // parsing from memory is several times faster than from the stream
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const json::parse_error& e) {
    throw_user_error("{}: not valid JSON: {}", path, e.what());
  }
}

// -1 when no header cell matches one of `names` (any case).
int find_column_ci(const std::vector<std::string>& header, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    for (size_t c = 0; c < header.size(); ++c) {
      if (lowercase(header[c]) == name) return static_cast<int>(c);
    }
  }
  return -1;
}

int named_column(const std::string& path, const std::vector<std::string>& header,
                 const std::string& name, const char* option) {
  const auto found = std::find(header.begin(), header.end(), name);
  RECLM_USER_CHECK(found != header.end(), "{}: {} \"{}\" is not a column (columns: {})", path,
                   option, name, fmt::join(header, ", "));
  return static_cast<int>(found - header.begin());
}

// Reads the header row of a metadata table; UserError when the file has none.
std::vector<std::string> read_header(RecordReader& reader) {
  RECLM_USER_CHECK(reader.next(), "{}: empty file (a header row is expected)", reader.path());
  RECLM_USER_CHECK(reader.error().empty(), "{}:{}: header: {}", reader.path(), reader.line(),
                   reader.error());
  std::vector<std::string> header;
  for (std::string_view f : reader.fields()) header.emplace_back(trim(f));
  return header;
}

// Whether `id` names a dataset item still without metadata; counts unmatched rows.
int32_t claim_item(const KeyInterner& items, std::string_view key, std::vector<uint8_t>* seen,
                   IngestReport* report) {
  const int32_t id = items.find(key);
  if (id < 0) {
    ++report->metadata_unmatched;
    return -1;
  }
  if ((*seen)[id]) return -1;
  (*seen)[id] = 1;
  return id;
}

// Advances `reader` to the next well-formed metadata row (as many fields as the header, a
// non-empty id in id_column), reporting malformed ones to bad_lines. False at the end.
bool next_keyed_row(RecordReader& reader, const std::vector<std::string>& header, int id_column,
                    std::string_view what, BadLines& bad_lines, std::string_view* key) {
  while (reader.next()) {
    const std::string where = fmt::format("{}:{}", reader.path(), reader.line());
    if (!reader.error().empty()) {
      bad_lines.report(where, reader.error(), reader.text());
      continue;
    }
    const auto& f = reader.fields();
    if (f.size() != header.size()) {
      bad_lines.report(where, fmt::format("expected {} fields (as the header), found {}",
                                          header.size(), f.size()),
                       reader.text());
      continue;
    }
    *key = trim(f[id_column]);
    if (key->empty()) {
      bad_lines.report(where, fmt::format("empty {} id (column \"{}\")", what, header[id_column]),
                       reader.text());
      continue;
    }
    return true;
  }
  return false;
}

void read_item_table(const IngestOptions& options, const KeyInterner& items,
                     ItemMetadata* metadata, BadLines& bad_lines, IngestReport* report) {
  const std::string& path = options.items_path;
  RecordReader reader(path, resolve_delimiter("auto", path), options.progress);
  const std::vector<std::string> header = read_header(reader);
  int id_column = 0;
  if (options.item_id_field == "auto") {
    id_column = std::max(find_column_ci(header, {"id", "item_id"}), 0);
  } else {
    id_column = named_column(path, header, options.item_id_field, "item_id_field");
  }
  int title_column = -1;  // -1: the last non-empty cell other than the id (auto rule)
  if (options.item_title_field == "auto") {
    title_column = find_column_ci(header, {"title"});
  } else {
    title_column = named_column(path, header, options.item_title_field, "item_title_field");
  }
  std::vector<uint8_t> seen(items.keys().size(), 0);
  std::string_view key;
  while (next_keyed_row(reader, header, id_column, "item", bad_lines, &key)) {
    const auto& f = reader.fields();
    const int32_t id = claim_item(items, key, &seen, report);
    if (id < 0) continue;
    std::string_view title;
    if (title_column >= 0) {
      title = trim(f[title_column]);
    } else {
      for (int c = static_cast<int>(f.size()) - 1; c >= 0 && title.empty(); --c) {
        if (c != id_column) title = trim(f[c]);
      }
    }
    metadata->titles[id] = title;
  }
}

// An id in JSON: a string, or an integer written without a decimal point.
bool json_key(const json& value, std::string* key) {
  if (value.is_string()) {
    *key = value.get<std::string>();
  } else if (value.is_number_integer()) {
    *key = value.dump();
  } else {
    return false;
  }
  return true;
}

// A list of attribute names; false when `value` is not an array of strings/numbers.
bool json_attributes(const json& value, std::vector<std::string>* out) {
  if (!value.is_array()) return false;
  for (const json& a : value) {
    if (a.is_string()) {
      out->push_back(a.get<std::string>());
    } else if (a.is_number()) {
      out->push_back(a.dump());
    } else {
      return false;
    }
  }
  return true;
}

const json* find_field(const json& record, const std::string& option,
                       std::initializer_list<const char*> auto_names) {
  if (option != "auto") {
    const auto it = record.find(option);
    return it == record.end() ? nullptr : &*it;
  }
  for (const char* name : auto_names) {
    const auto it = record.find(name);
    if (it != record.end()) return &*it;
  }
  return nullptr;
}

// One item record (an object). `key_hint` is the id when the file maps id → record.
void take_item_record(const json& record, const std::string* key_hint, const std::string& where,
                      const IngestOptions& options, const KeyInterner& items,
                      std::vector<uint8_t>* seen, ItemMetadata* metadata, BadLines& bad_lines,
                      IngestReport* report) {
  if (key_hint != nullptr && record.is_string()) {  // id → "title"
    const int32_t id = claim_item(items, *key_hint, seen, report);
    if (id >= 0) metadata->titles[id] = record.get<std::string>();
    return;
  }
  if (!record.is_object()) {
    bad_lines.report(where, "expected a JSON object", record.dump());
    return;
  }
  std::string key;
  if (key_hint != nullptr) {
    key = *key_hint;
  } else {
    const json* id_value = find_field(record, options.item_id_field, {"id", "item_id", "asin"});
    if (id_value == nullptr || !json_key(*id_value, &key) || key.empty()) {
      bad_lines.report(where, "no item id (a string or integer field \"id\", \"item_id\" or "
                              "\"asin\", or item_id_field)",
                       record.dump());
      return;
    }
  }
  const json* title = find_field(record, options.item_title_field, {"title", "name"});
  if (title != nullptr && !title->is_string() && !title->is_null()) {
    bad_lines.report(where, "the title is not a string", record.dump());
    return;
  }
  std::vector<std::string> attributes;
  const auto listed = record.find("attributes");
  if (listed != record.end() && !json_attributes(*listed, &attributes)) {
    bad_lines.report(where, "\"attributes\" is not a list of strings or numbers", record.dump());
    return;
  }
  const int32_t id = claim_item(items, key, seen, report);
  if (id < 0) return;
  if (title != nullptr && title->is_string()) metadata->titles[id] = title->get<std::string>();
  auto& mine = metadata->attributes[id];
  mine.insert(mine.end(), attributes.begin(), attributes.end());
}

void read_item_json(const IngestOptions& options, const KeyInterner& items,
                    ItemMetadata* metadata, BadLines& bad_lines, IngestReport* report) {
  const std::string& path = options.items_path;
  std::vector<uint8_t> seen(items.keys().size(), 0);
  const std::string ext = extension_of(path);
  if (ext == ".jsonl" || ext == ".ndjson") {
    LineReader reader(path, options.progress);
    std::string_view line;
    while (reader.next(&line)) {
      if (trim(line).empty()) continue;
      const std::string where = fmt::format("{}:{}", path, reader.line_number());
      json record;
      try {
        record = json::parse(line);
      } catch (const json::parse_error& e) {
        bad_lines.report(where, fmt::format("not valid JSON ({})", e.what()), line);
        continue;
      }
      take_item_record(record, nullptr, where, options, items, &seen, metadata, bad_lines, report);
    }
    return;
  }
  const json root = parse_json_file(path);
  if (root.is_array()) {
    for (size_t i = 0; i < root.size(); ++i) {
      take_item_record(root[i], nullptr, fmt::format("{}: element {}", path, i), options, items,
                       &seen, metadata, bad_lines, report);
    }
  } else if (root.is_object()) {
    for (const auto& [key, value] : root.items()) {
      take_item_record(value, &key, fmt::format("{}: item \"{}\"", path, key), options, items,
                       &seen, metadata, bad_lines, report);
    }
  } else {
    throw_user_error("{}: expected a JSON array of item records or an object id → record", path);
  }
}

}  // namespace

void read_item_metadata(const IngestOptions& options, const KeyInterner& items,
                        ItemMetadata* metadata, BadLines& bad_lines, IngestReport* report) {
  const std::string ext = extension_of(options.items_path);
  if (ext == ".json" || ext == ".jsonl" || ext == ".ndjson") {
    read_item_json(options, items, metadata, bad_lines, report);
  } else {
    read_item_table(options, items, metadata, bad_lines, report);
  }
}

void read_item_attributes(const std::string& path, const KeyInterner& items,
                          ItemMetadata* metadata, BadLines& bad_lines, IngestReport* report) {
  const json root = parse_json_file(path);
  RECLM_USER_CHECK(root.is_object(), "{}: expected a JSON object item id → [attribute, ...]",
                   path);
  std::vector<std::string> attributes;
  for (const auto& [key, value] : root.items()) {
    attributes.clear();
    if (!json_attributes(value, &attributes)) {
      bad_lines.report(fmt::format("{}: item \"{}\"", path, key),
                       "expected a list of attributes (strings or numbers)", value.dump());
      continue;
    }
    const int32_t id = items.find(key);
    if (id < 0) {
      ++report->metadata_unmatched;
      continue;
    }
    auto& mine = metadata->attributes[id];
    mine.insert(mine.end(), attributes.begin(), attributes.end());
  }
}

void fill_item_table(ItemMetadata&& metadata, ItemTable* table) {
  const auto n_items = static_cast<size_t>(table->size());
  RECLM_CHECK(metadata.titles.size() == n_items && metadata.attributes.size() == n_items,
              "metadata sized {} / {} for {} items", metadata.titles.size(),
              metadata.attributes.size(), n_items);
  table->titles = std::move(metadata.titles);

  // An item's attributes without repeats (lists are short: a linear scan is fine).
  for (auto& list : metadata.attributes) {
    std::vector<std::string> unique;
    for (auto& a : list) {
      if (std::find(unique.begin(), unique.end(), a) == unique.end()) unique.push_back(std::move(a));
    }
    list = std::move(unique);
  }
  std::vector<std::string> names;
  for (const auto& list : metadata.attributes) names.insert(names.end(), list.begin(), list.end());
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  const bool all_integers = std::all_of(names.begin(), names.end(), [](const std::string& s) {
    int64_t v = 0;
    return parse_int64(s, &v) && trim(s).size() == s.size();
  });
  if (all_integers) {
    std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
      int64_t x = 0, y = 0;
      parse_int64(a, &x);
      parse_int64(b, &y);
      return x != y ? x < y : a < b;  // "7" and "07" are distinct names
    });
  }
  KeyInterner ids;
  for (const auto& name : names) ids.intern(name);

  table->attr_offsets.assign(1, 0);
  table->attr_ids.clear();
  for (const auto& list : metadata.attributes) {
    for (const auto& a : list) table->attr_ids.push_back(ids.find(a));
    table->attr_offsets.push_back(static_cast<int64_t>(table->attr_ids.size()));
  }
  table->attribute_names = std::move(names);
}

std::vector<std::string> read_user_profiles(const std::string& path, const KeyInterner& users,
                                            bool progress, BadLines& bad_lines,
                                            IngestReport* report) {
  RecordReader reader(path, resolve_delimiter("auto", path), progress);
  const std::vector<std::string> header = read_header(reader);
  const int id_column = std::max(find_column_ci(header, {"id", "user_id"}), 0);
  std::vector<std::string> profiles(users.keys().size());
  std::vector<uint8_t> seen(users.keys().size(), 0);
  std::string text;
  std::string_view key;
  while (next_keyed_row(reader, header, id_column, "user", bad_lines, &key)) {
    const auto& f = reader.fields();
    const int32_t id = users.find(key);
    if (id < 0) {
      ++report->metadata_unmatched;
      continue;
    }
    if (seen[id]) continue;
    seen[id] = 1;
    text.clear();
    for (size_t c = 0; c < f.size(); ++c) {
      const std::string_view value = trim(f[c]);
      if (static_cast<int>(c) == id_column || value.empty()) continue;
      if (header.size() == 2) {
        text = value;
        break;
      }
      if (!text.empty()) text += "; ";
      text += fmt::format("{}: {}", header[c], value);
    }
    profiles[id] = text;
  }
  return profiles;
}

}  // namespace reclm
