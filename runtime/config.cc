// Reading, resolving and printing configs (schema: configs/reclm.proto). Overrides
// (`--set a.b=v`) live in config_override.cc, the semantic rules in config_validate.cc.
//
// Everything walks the schema by reflection, so a field added to reclm.proto is parsed, printed
// with its default and overridable without touching this file.
#include "runtime/config.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/ranges.h>

#include "runtime/errors.h"

namespace reclm {

namespace pb = google::protobuf;

namespace {

std::string join(const std::vector<std::string>& parts, const char* separator) {
  std::string out;
  for (const std::string& part : parts) out += (out.empty() ? "" : separator) + part;
  return out;
}

// In `text`, what follows the first `open` up to the next double quote; "" if absent.
std::string quoted_after(const std::string& text, const std::string& open) {
  const size_t begin = text.find(open);
  if (begin == std::string::npos) return "";
  const size_t end = text.find('"', begin + open.size());
  return end == std::string::npos ? ""
                                  : text.substr(begin + open.size(), end - begin - open.size());
}

// The enum type of the one enum field called `name` anywhere in the schema; null if none or
// several different ones.
const pb::EnumDescriptor* find_enum_field_type(const pb::Descriptor& type,
                                               const std::string& name) {
  const pb::EnumDescriptor* found = nullptr;
  for (int i = 0; i < type.field_count(); ++i) {
    const pb::FieldDescriptor* field = type.field(i);
    const pb::EnumDescriptor* match = nullptr;
    if (field->message_type() != nullptr) {
      match = find_enum_field_type(*field->message_type(), name);
    } else if (field->enum_type() != nullptr && field->name() == name) {
      match = field->enum_type();
    }
    if (match != nullptr && found != nullptr && match != found) return nullptr;
    if (match != nullptr) found = match;
  }
  return found;
}

// Protobuf's unknown-field and unknown-enum messages name the mistake but not the choices;
// append them, so a typo is fixed from the message alone (as `--set` does). Other messages
// pass through unchanged, as does any wording a future protobuf might use.
std::string with_valid_names(const std::string& message) {
  const pb::DescriptorPool* pool = pb::DescriptorPool::generated_pool();
  if (message.find("has no field named") != std::string::npos) {
    if (const pb::Descriptor* type =
            pool->FindMessageTypeByName(quoted_after(message, "Message type \""))) {
      std::vector<std::string> names;
      for (int i = 0; i < type->field_count(); ++i) names.push_back(type->field(i)->name());
      return fmt::format("{} Fields of {}: {}.", message, type->name(), join(names, ", "));
    }
  }
  if (message.find("Unknown enumeration value") != std::string::npos) {
    // The message names the field but not its message; field names of enums are unique in
    // reclm.proto, and if that ever changes the message is simply left as it is.
    const pb::EnumDescriptor* type =
        find_enum_field_type(*Config::descriptor(), quoted_after(message, "for field \""));
    if (type != nullptr) {
      std::vector<std::string> names;
      for (int i = 0; i < type->value_count(); ++i) names.push_back(type->value(i)->name());
      return fmt::format("{} Values of {}: {}.", message, type->name(), join(names, ", "));
    }
  }
  return message;
}

// Protobuf reports 0-based lines and columns; editors and compilers show 1-based ones, so the
// message is "file:line:col: ..." exactly as `vim +line` or an IDE jump expects.
class ConfigErrorCollector : public pb::io::ErrorCollector {
 public:
  explicit ConfigErrorCollector(const std::string& source) : source_(source) {}

  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    errors_.push_back(
        fmt::format("{}:{}:{}: {}", source_, line + 1, column + 1, with_valid_names(message)));
  }

  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::string source_;
  std::vector<std::string> errors_;
};

// Sets every unset singular field to its schema default, creating every sub-message (even an
// empty one such as CheckpointConfig), so the printed config lists every option that applies.
void fill_defaults(pb::Message& message) {
  const pb::Descriptor* descriptor = message.GetDescriptor();
  const pb::Reflection* reflection = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const pb::FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated()) continue;  // a repeated field's default is empty
    if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      fill_defaults(*reflection->MutableMessage(&message, field));
      continue;
    }
    if (reflection->HasField(message, field)) continue;
    switch (field->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_INT32:
        reflection->SetInt32(&message, field, field->default_value_int32());
        break;
      case pb::FieldDescriptor::CPPTYPE_INT64:
        reflection->SetInt64(&message, field, field->default_value_int64());
        break;
      case pb::FieldDescriptor::CPPTYPE_UINT32:
        reflection->SetUInt32(&message, field, field->default_value_uint32());
        break;
      case pb::FieldDescriptor::CPPTYPE_UINT64:
        reflection->SetUInt64(&message, field, field->default_value_uint64());
        break;
      case pb::FieldDescriptor::CPPTYPE_FLOAT:
        reflection->SetFloat(&message, field, field->default_value_float());
        break;
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
        reflection->SetDouble(&message, field, field->default_value_double());
        break;
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        reflection->SetBool(&message, field, field->default_value_bool());
        break;
      case pb::FieldDescriptor::CPPTYPE_ENUM:
        reflection->SetEnum(&message, field, field->default_value_enum());
        break;
      case pb::FieldDescriptor::CPPTYPE_STRING:
        reflection->SetString(&message, field, field->default_value_string());
        break;
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        break;  // handled above
    }
  }
}

// Llama's MLP width: 2/3 of 4·d_model (SwiGLU has three matrices instead of two, so this keeps
// the parameter count of a 4·d_model GELU MLP), rounded up to a multiple of 256 (Llama's multiple_of, so d_model 4096 gives Llama-7B's 11008).
// Returns 0 (left for validation to reject) when d_model is not positive or the result overflows.
int32_t llama_d_ff(int32_t d_model) {
  if (d_model <= 0) return 0;
  const int64_t raw = (8 * int64_t{d_model} + 2) / 3;  // ceil(8·d_model / 3)
  const int64_t rounded = (raw + 255) / 256 * 256;
  return rounded > std::numeric_limits<int32_t>::max() ? 0 : static_cast<int32_t>(rounded);
}

}  // namespace

Config parse_config_text(const std::string& text, const std::string& source_name) {
  ConfigErrorCollector errors(source_name);
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  // The defaults already reject these; stated so a protobuf upgrade cannot silently relax them.
  // A misspelled option that is ignored is worse than one that stops the run.
  parser.AllowUnknownField(false);
  parser.AllowUnknownExtension(false);
  parser.AllowFieldNumber(false);
  Config config;
  if (!parser.ParseFromString(text, &config)) {
    if (errors.errors().empty()) throw_user_error("{}: not a valid reclm config", source_name);
    throw UserError(join(errors.errors(), "\n"));
  }
  return config;
}

Config read_config_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw_user_error("config file {}: is a directory, expected a .pbtxt file", path);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) {
    throw_user_error("config file {}: cannot open: {}", path, std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw_user_error("config file {}: read failed: {}", path, std::strerror(errno));
  return parse_config_text(text.str(), path);
}

void resolve_config(Config& config) {
  fill_defaults(config);
  config::ModelConfig& model = *config.mutable_model();
  if (model.n_kv_heads() == 0) model.set_n_kv_heads(model.n_heads());
  if (model.d_ff() == 0) model.set_d_ff(llama_d_ff(model.d_model()));
}

void validate_config_from(const Config& config, const std::string& path,
                          const std::vector<std::string>& overrides) {
  try {
    validate_config(config);
  } catch (const UserError& e) {
    // Say where the effective config came from (the file, and the --set values on top of it, which
    // the file does not show); the field names say what to fix.
    std::string source = path;
    if (!overrides.empty()) {
      source += fmt::format("{}--set {}", path.empty() ? "" : " with ",
                            fmt::join(overrides, " --set "));
    }
    if (source.empty()) throw;
    throw UserError(fmt::format("{}: {}", source, e.what()));
  }
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  Config config = path.empty() ? Config{} : read_config_file(path);
  for (const std::string& assignment : overrides) apply_override(config, assignment);
  resolve_config(config);
  validate_config_from(config, path, overrides);
  return config;
}

std::string config_to_text(const Config& config) {
  std::string text;
  if (!pb::TextFormat::PrintToString(config, &text)) {
    throw InternalError("config_to_text: protobuf TextFormat could not print the config");
  }
  return text;
}

}  // namespace reclm
