// `--set a.b.c=value`: one config field overridden by its path (DESIGN.md §3).
//
// Values are parsed strictly — the whole text must be one number of the field's type, in range,
// finite — because a silently truncated "3e-4x" or a wrapped "3000000000" would train the wrong
// model without a word. Every error repeats the override and lists the valid names at the level
// where the path went wrong, so a typo is fixed from the message alone.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <string_view>
#include <system_error>

#include "runtime/config.h"
#include "runtime/errors.h"

namespace reclm {

namespace pb = google::protobuf;

namespace {

std::string field_names(const pb::Descriptor* descriptor) {
  std::string names;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    names += (i == 0 ? "" : ", ") + descriptor->field(i)->name();
  }
  return names.empty() ? "none" : names;
}

std::string enum_names(const pb::EnumDescriptor* descriptor) {
  std::string names;
  for (int i = 0; i < descriptor->value_count(); ++i) {
    names += (i == 0 ? "" : ", ") + descriptor->value(i)->name();
  }
  return names;
}

// What went wrong with the value alone; apply_override adds the override and field path.
struct BadValue {
  std::string why;
};

template <typename Int>
Int parse_integer(std::string_view text, const char* type_name) {
  Int value{};
  const char* end = text.data() + text.size();
  const auto [stop, ec] = std::from_chars(text.data(), end, value);
  if (ec == std::errc::result_out_of_range) {
    throw BadValue{fmt::format("\"{}\" is out of range for {} [{}, {}]", text, type_name,
                               std::numeric_limits<Int>::min(), std::numeric_limits<Int>::max())};
  }
  if (text.empty() || ec != std::errc() || stop != end) {
    throw BadValue{fmt::format("\"{}\" is not an integer ({})", text, type_name)};
  }
  return value;
}

template <typename Real>
Real parse_real(std::string_view text, const char* type_name) {
  Real value{};
  const char* end = text.data() + text.size();
  const auto [stop, ec] = std::from_chars(text.data(), end, value);
  if (ec == std::errc::result_out_of_range) {
    throw BadValue{fmt::format("\"{}\" is out of range for {}", text, type_name)};
  }
  if (text.empty() || ec != std::errc() || stop != end) {
    throw BadValue{fmt::format("\"{}\" is not a number ({})", text, type_name)};
  }
  if (!std::isfinite(value))
    throw BadValue{fmt::format("\"{}\" is not a finite {}", text, type_name)};
  return value;
}

bool parse_bool(std::string_view text) {
  if (text == "true" || text == "1") return true;
  if (text == "false" || text == "0") return false;
  throw BadValue{fmt::format("\"{}\" is not a bool (true, false, 1 or 0)", text)};
}

// By name (COSINE) as in a .pbtxt file, or by number as protobuf itself allows.
const pb::EnumValueDescriptor* parse_enum(std::string_view text,
                                          const pb::EnumDescriptor* descriptor) {
  if (const auto* value = descriptor->FindValueByName(std::string(text))) return value;
  int number = 0;
  const char* end = text.data() + text.size();
  const auto [stop, ec] = std::from_chars(text.data(), end, number);
  if (!text.empty() && ec == std::errc() && stop == end) {
    if (const auto* value = descriptor->FindValueByNumber(number)) return value;
  }
  throw BadValue{fmt::format("\"{}\" is not a {} (values: {})", text, descriptor->name(),
                             enum_names(descriptor))};
}

// Sets a singular field, or (repeated field) appends one element.
void store_scalar(pb::Message& message, const pb::FieldDescriptor* field, std::string_view text) {
  const bool add = field->is_repeated();
  const pb::Reflection* reflection = message.GetReflection();
  switch (field->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      add ? reflection->AddInt32(&message, field, parse_integer<int32_t>(text, "int32"))
          : reflection->SetInt32(&message, field, parse_integer<int32_t>(text, "int32"));
      break;
    case pb::FieldDescriptor::CPPTYPE_INT64:
      add ? reflection->AddInt64(&message, field, parse_integer<int64_t>(text, "int64"))
          : reflection->SetInt64(&message, field, parse_integer<int64_t>(text, "int64"));
      break;
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      add ? reflection->AddUInt32(&message, field, parse_integer<uint32_t>(text, "uint32"))
          : reflection->SetUInt32(&message, field, parse_integer<uint32_t>(text, "uint32"));
      break;
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      add ? reflection->AddUInt64(&message, field, parse_integer<uint64_t>(text, "uint64"))
          : reflection->SetUInt64(&message, field, parse_integer<uint64_t>(text, "uint64"));
      break;
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      add ? reflection->AddFloat(&message, field, parse_real<float>(text, "float"))
          : reflection->SetFloat(&message, field, parse_real<float>(text, "float"));
      break;
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      add ? reflection->AddDouble(&message, field, parse_real<double>(text, "double"))
          : reflection->SetDouble(&message, field, parse_real<double>(text, "double"));
      break;
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      add ? reflection->AddBool(&message, field, parse_bool(text))
          : reflection->SetBool(&message, field, parse_bool(text));
      break;
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      add ? reflection->AddEnum(&message, field, parse_enum(text, field->enum_type()))
          : reflection->SetEnum(&message, field, parse_enum(text, field->enum_type()));
      break;
    case pb::FieldDescriptor::CPPTYPE_STRING:
      add ? reflection->AddString(&message, field, std::string(text))
          : reflection->SetString(&message, field, std::string(text));
      break;
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      throw InternalError("store_scalar called on a message field");
  }
}

[[noreturn]] void fail_override(const std::string& assignment, const std::string& why) {
  throw UserError(fmt::format("--set {}: {}", assignment, why));
}

}  // namespace

void apply_override(Config& config, const std::string& assignment) {
  const size_t equals = assignment.find('=');
  if (equals == std::string::npos) {
    fail_override(assignment, "expected path=value, e.g. --set train.lr=3e-4");
  }
  const std::string_view path = std::string_view(assignment).substr(0, equals);
  const std::string_view value = std::string_view(assignment).substr(equals + 1);
  if (path.empty()) fail_override(assignment, "no field path before '=', e.g. --set train.lr=3e-4");

  // Walk the path one name at a time, creating sub-messages as needed (the resolve step fills
  // their other fields with defaults anyway).
  pb::Message* message = &config;
  std::string walked;  // the path up to `message`, for messages
  size_t start = 0;
  for (;;) {
    const size_t dot = path.find('.', start);
    const std::string name(path.substr(start, dot - start));  // to the end when dot is npos
    const pb::Descriptor* descriptor = message->GetDescriptor();
    const pb::FieldDescriptor* field = descriptor->FindFieldByName(name);
    if (field == nullptr) {
      fail_override(assignment,
                    fmt::format("no field \"{}\" in {} (fields: {})", name,
                                walked.empty() ? "the config" : walked, field_names(descriptor)));
    }
    const std::string field_path = walked.empty() ? name : walked + "." + name;
    const bool is_message = field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE;
    if (field->is_repeated() && (is_message || dot != std::string_view::npos)) {
      fail_override(assignment,
                    fmt::format("{} is a repeated group; --set reaches single values", field_path));
    }
    if (dot == std::string_view::npos) {
      if (is_message) {
        fail_override(
            assignment,
            fmt::format("{} is a group of options, not a value; set one of its fields ({})",
                        field_path, field_names(field->message_type())));
      }
      try {
        if (field->is_repeated()) {  // the whole list, comma separated ("" clears it)
          message->GetReflection()->ClearField(message, field);
          for (size_t begin = 0; begin < value.size();) {
            const size_t comma = std::min(value.find(',', begin), value.size());
            store_scalar(*message, field, value.substr(begin, comma - begin));
            begin = comma + 1;
          }
        } else {
          store_scalar(*message, field, value);
        }
      } catch (const BadValue& bad) {
        fail_override(assignment, fmt::format("{} (field {})", bad.why, field_path));
      }
      return;
    }
    if (!is_message) {
      fail_override(assignment, fmt::format("{} is a {} value, it has no field \"{}\"", field_path,
                                            field->type_name(), path.substr(dot + 1)));
    }
    message = message->GetReflection()->MutableMessage(message, field);
    walked = field_path;
    start = dot + 1;
  }
}

}  // namespace reclm
