// Loading, overriding, resolving and validating a reclm config (schema: configs/reclm.proto).
// Every failure is a UserError whose message names the file:line:column or the field path.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "reclm.pb.h"

namespace reclm {

using Config = reclm::config::ReclmConfig;

// Parses protobuf text format. `source_name` (usually the file path) prefixes every error as
// "source:line:column: message". Unknown fields are errors.
Config parse_config_text(const std::string& text, const std::string& source_name);

// Reads and parses a .pbtxt file; a missing/unreadable file is a UserError naming it.
Config read_config_file(const std::string& path);

// Applies one override "a.b.c=value" (scalar fields and enums by name; repeated fields not
// supported). Unknown path, wrong type or out-of-range value is a UserError naming the path.
void apply_override(Config& config, const std::string& assignment);

// Fills every unset field with its schema default and derived values (n_kv_heads 0 → n_heads,
// d_ff 0 → Llama rule), so the printed config shows exactly what runs.
void resolve_config(Config& config);

// Semantic rules (positive sizes, divisibility, ranges); the message names field and rule.
void validate_config(const Config& config);
// validate_config, its message prefixed with where the config came from: "PATH with --set A
// --set B: field ...", for a config read from `path` (may be empty) with `overrides` applied.
void validate_config_from(const Config& config, const std::string& path,
                          const std::vector<std::string>& overrides);

// True for the projection names model.lora.targets accepts (Hugging Face module names: q_proj,
// k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj).
bool is_lora_target(std::string_view name);

// read_config_file (or defaults when path is empty) + overrides in order + resolve + validate.
Config load_config(const std::string& path, const std::vector<std::string>& overrides);

// Protobuf text format of the whole effective config.
std::string config_to_text(const Config& config);

}  // namespace reclm
