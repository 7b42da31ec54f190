// validate_config: the semantic rules of a resolved config (sizes, ranges, divisibility).
//
// Parsing already guarantees types and ranges of the wire types; these are the rules protobuf
// cannot express. Every broken rule is reported at once, each naming its field path, so one
// `reclm config` run lists everything to fix. Float fields are checked for finiteness by
// reflection, so a float added to reclm.proto is covered without a new line here.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/cuda/attention_head_dims.h"
#include "runtime/config.h"
#include "runtime/errors.h"

namespace reclm {

namespace pb = google::protobuf;

namespace {

// Collects every broken rule, so one `reclm config` run shows all of them instead of one per try.
class Violations {
 public:
  template <typename... Args>
  void add(std::string_view field, fmt::format_string<Args...> rule, Args&&... args) {
    messages_.push_back(
        fmt::format("field {}: {}", field, fmt::format(rule, std::forward<Args>(args)...)));
  }

  // Rules on floats skip non-finite values: check_finite already reported those. (For
  // integers std::isfinite is always true.) fmt prints a float as written: 0.95, not 0.9499999.
  template <typename T>
  void positive(std::string_view field, T value) {
    if (std::isfinite(value) && !(value > 0)) add(field, "must be > 0 (got {})", value);
  }
  template <typename T>
  void non_negative(std::string_view field, T value) {
    if (std::isfinite(value) && value < 0) add(field, "must be >= 0 (got {})", value);
  }
  // value in [0, 1] or, with `one_excluded`, in [0, 1).
  void unit_interval(std::string_view field, float value, bool one_excluded) {
    if (!std::isfinite(value)) return;
    if (value < 0 || value > 1 || (one_excluded && value == 1)) {
      add(field, "must be in [0, 1{} (got {})", one_excluded ? ")" : "]", value);
    }
  }

  const std::vector<std::string>& messages() const { return messages_; }

 private:
  std::vector<std::string> messages_;
};

// Every float/double field anywhere in the config must be finite (text format accepts inf/nan).
void check_finite(const pb::Message& message, const std::string& prefix, Violations& violations) {
  const pb::Descriptor* descriptor = message.GetDescriptor();
  const pb::Reflection* reflection = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const pb::FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated()) continue;
    const std::string path = prefix.empty() ? field->name() : prefix + "." + field->name();
    switch (field->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        check_finite(reflection->GetMessage(message, field), path, violations);
        break;
      case pb::FieldDescriptor::CPPTYPE_FLOAT:
        if (float v = reflection->GetFloat(message, field); !std::isfinite(v)) {
          violations.add(path, "must be finite (got {})", v);
        }
        break;
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
        if (double v = reflection->GetDouble(message, field); !std::isfinite(v)) {
          violations.add(path, "must be finite (got {})", v);
        }
        break;
      default:
        break;
    }
  }
}

void check_model(const config::ModelConfig& m, Violations& v) {
  v.non_negative("model.vocab_size", m.vocab_size());  // 0: the data's vocabulary
  v.positive("model.d_model", m.d_model());
  v.positive("model.n_layers", m.n_layers());
  v.positive("model.n_heads", m.n_heads());
  v.positive("model.n_kv_heads", m.n_kv_heads());
  v.positive("model.d_ff", m.d_ff());
  v.positive("model.max_seq_len", m.max_seq_len());
  if (m.d_model() > 0 && m.n_heads() > 0) {
    if (m.d_model() % m.n_heads() != 0) {
      v.add("model.d_model", "must be divisible by model.n_heads ({} % {} != 0)", m.d_model(),
            m.n_heads());
    } else if (const int head_dim = m.d_model() / m.n_heads(); head_dim % 2 != 0) {
      // RoPE rotates pairs of channels within a head.
      v.add("model.d_model", "head dim d_model / n_heads = {} / {} = {} must be even (RoPE)",
            m.d_model(), m.n_heads(), head_dim);
    } else if (m.positions() == config::ModelConfig::POSITIONS_2D && head_dim % 4 != 0) {
      // 2D RoPE gives half of the rotary pairs to each position id, so each half is whole pairs.
      v.add("model.positions",
            "POSITIONS_2D needs head dim d_model / n_heads divisible by 4 (got {} / {} = {})",
            m.d_model(), m.n_heads(), head_dim);
    }
  }
  if (m.n_heads() > 0 && m.n_kv_heads() > 0 && m.n_heads() % m.n_kv_heads() != 0) {
    v.add("model.n_kv_heads", "must divide model.n_heads ({} % {} != 0)", m.n_heads(),
          m.n_kv_heads());
  }
  v.positive("model.rope_theta", m.rope_theta());
  v.positive("model.norm_eps", m.norm_eps());
  v.positive("model.init_std", m.init_std());
  v.unit_interval("model.dropout", m.dropout(), /*one_excluded=*/true);
  const config::LoraConfig& lora = m.lora();
  v.non_negative("model.lora.rank", lora.rank());
  v.positive("model.lora.alpha", lora.alpha());
  for (const std::string& target : lora.targets()) {
    if (!is_lora_target(target)) {
      v.add("model.lora.targets",
            "unknown projection \"{}\" (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
            "down_proj)",
            target);
    }
  }
}

void check_data(const config::DataConfig& d, const config::ModelConfig& m, Violations& v) {
  v.positive("data.seq_len", d.seq_len());
  if (d.seq_len() > m.max_seq_len() && m.max_seq_len() > 0) {
    v.add("data.seq_len", "must be <= model.max_seq_len ({} > {})", d.seq_len(), m.max_seq_len());
  }
  if (std::isfinite(d.val_fraction()) && !(d.val_fraction() > 0 && d.val_fraction() <= 0.5)) {
    v.add("data.val_fraction", "must be in (0, 0.5] (got {})", d.val_fraction());
  }
  v.positive("data.synthetic_bytes", d.synthetic_bytes());
  const double weights[] = {d.next_item_weight(), d.infill_weight(), d.text_lm_weight(),
                            d.prompt_weight()};
  const char* names[] = {"data.next_item_weight", "data.infill_weight", "data.text_lm_weight",
                         "data.prompt_weight"};
  double total = 0;
  for (int i = 0; i < 4; ++i) {
    v.non_negative(names[i], weights[i]);
    if (weights[i] > 0) total += weights[i];
  }
  if (!d.dataset().empty() && total <= 0) {
    v.add("data.next_item_weight", "at least one objective weight must be > 0 (next_item, infill, "
          "text_lm, prompt)");
  }
  v.unit_interval("data.title_loss_weight", d.title_loss_weight(), /*one_excluded=*/false);
  v.non_negative("data.infill_entity_weight", d.infill_entity_weight());
  v.non_negative("data.infill_sentence_weight", d.infill_sentence_weight());
  v.non_negative("data.infill_document_weight", d.infill_document_weight());
  if (d.infill_entity_weight() + d.infill_sentence_weight() + d.infill_document_weight() <= 0) {
    v.add("data.infill_entity_weight", "the infilling kinds need a positive total weight");
  }
  if (std::isfinite(d.infill_mask_fraction()) &&
      !(d.infill_mask_fraction() > 0 && d.infill_mask_fraction() < 1)) {
    v.add("data.infill_mask_fraction", "must be in (0, 1) (got {})", d.infill_mask_fraction());
  }
  if (!d.dataset().empty() && d.rendering() == config::DataConfig::ID && d.text_lm_weight() > 0) {
    v.add("data.text_lm_weight", "the text LM needs titles in the stream; use rendering TEXT or "
          "ID_TEXT");
  }
}

void check_train(const config::TrainConfig& t, Violations& v) {
  v.positive("train.steps", t.steps());
  v.positive("train.micro_batch", t.micro_batch());
  v.positive("train.grad_accum", t.grad_accum());
  v.positive("train.lr", t.lr());
  v.non_negative("train.warmup_steps", t.warmup_steps());
  v.unit_interval("train.min_lr_ratio", t.min_lr_ratio(), false);
  v.positive("train.log_every", t.log_every());
  const std::string& init = t.init_from();
  if (!init.empty() && init.rfind("hf:", 0) != 0 && init.rfind("ckpt:", 0) != 0) {
    v.add("train.init_from", "must be \"hf:DIR\" or \"ckpt:DIR\" (got \"{}\")", init);
  } else if (init == "hf:" || init == "ckpt:") {
    v.add("train.init_from", "\"{}\" names no directory", init);
  }
}

void check_checkpoint(const config::CheckpointConfig& c, Violations& v) {
  v.non_negative("checkpoint.every", c.every());
  v.non_negative("checkpoint.keep_last", c.keep_last());
  v.non_negative("checkpoint.keep_every", c.keep_every());
}

void check_optim(const config::OptimConfig& o, Violations& v) {
  v.unit_interval("optim.beta1", o.beta1(), true);
  v.unit_interval("optim.beta2", o.beta2(), true);
  v.positive("optim.eps", o.eps());
  v.non_negative("optim.weight_decay", o.weight_decay());
  v.non_negative("optim.grad_clip", o.grad_clip());
}

void check_eval_and_runtime(const config::EvalConfig& e, const config::RuntimeConfig& r,
                            Violations& v) {
  v.non_negative("eval.val_every", e.val_every());
  v.positive("eval.val_batches", e.val_batches());
  for (int k : e.ks()) {
    if (k <= 0) v.add("eval.ks", "cutoffs must be > 0 (got {})", k);
  }
  v.non_negative("eval.max_users", e.max_users());
  v.positive("eval.beam_size", e.beam_size());
  v.positive("eval.users_per_batch", e.users_per_batch());
  v.non_negative("eval.rank_every", e.rank_every());
  v.positive("eval.rank_users", e.rank_users());
  v.non_negative("runtime.threads", r.threads());
  v.positive("runtime.comm_timeout_s", r.comm_timeout_s());
  v.non_negative("runtime.grad_bucket_mb", r.grad_bucket_mb());
  if (r.device() != "cpu" && r.device() != "cuda") {
    v.add("runtime.device", "must be \"cpu\" or \"cuda\" (got \"{}\")", r.device());
  }
  v.non_negative("runtime.peak_tflops", r.peak_tflops());
}

void check_prepare(const config::PrepareConfig& p, Violations& v) {
  v.non_negative("prepare.kcore", p.kcore());
  if (p.learned_vocab_size() < 256) {
    v.add("prepare.learned_vocab_size", "must be >= 256 (the byte tokens; got {})",
          p.learned_vocab_size());
  }
  v.positive("prepare.synthetic_users", p.synthetic_users());
  v.positive("prepare.synthetic_items", p.synthetic_items());
  if (p.user_column() < 0) v.add("prepare.user_column", "must be >= 0 (got {})", p.user_column());
  if (p.item_column() < 0) v.add("prepare.item_column", "must be >= 0 (got {})", p.item_column());
  if (p.user_column() == p.item_column()) {
    v.add("prepare.item_column", "must differ from prepare.user_column (both {})", p.item_column());
  }
  if (p.output().empty()) v.add("prepare.output", "must name the dataset file to write");
}

}  // namespace

bool is_lora_target(std::string_view name) {
  for (std::string_view known :
       {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}) {
    if (name == known) return true;
  }
  return false;
}

void validate_config(const Config& config) {
  Violations violations;
  check_finite(config, "", violations);
  check_model(config.model(), violations);
  check_data(config.data(), config.model(), violations);
  check_train(config.train(), violations);
  check_optim(config.optim(), violations);
  check_checkpoint(config.checkpoint(), violations);
  check_eval_and_runtime(config.eval(), config.runtime(), violations);
  check_prepare(config.prepare(), violations);
  if (config.runtime().vocab_parallel()) {  // combinations it does not support (yet)
    if (config.optim().zero1()) {
      violations.add("runtime.vocab_parallel", "cannot be combined with optim.zero1");
    }
    if (config.model().lora().rank() > 0) {
      violations.add("runtime.vocab_parallel", "cannot be combined with model.lora");
    }
  }
  if (config.runtime().device() == "cuda") {  // what the CUDA backend does not do (yet)
    const config::ModelConfig& m = config.model();
    const int64_t head_dim = m.d_model() > 0 && m.n_heads() > 0 ? m.d_model() / m.n_heads() : 0;
    if (head_dim > 0 && m.d_model() % m.n_heads() == 0 && !cuda::attention_supports_head_dim(head_dim)) {
      violations.add("runtime.device", "\"cuda\" needs head dim d_model / n_heads = {} (got {} / {} = {})",
                     cuda::kAttentionHeadDimsText, m.d_model(), m.n_heads(), head_dim);
    }
    if (m.d_model() > 8192) violations.add("runtime.device", "\"cuda\" takes model.d_model up to 8192");
  } else {  // (a value other than the default)
    const config::RuntimeConfig& r = config.runtime();
    for (const auto& [set, field] : {std::pair{r.recompute_activations(), "recompute_activations"},
                                     std::pair{r.fp32_logits(), "fp32_logits"},
                                     std::pair{!r.second_stream(), "second_stream"},
                                     std::pair{r.gemm_autotune(), "gemm_autotune"},
                                     std::pair{!r.queued_steps(), "queued_steps"},
                                     std::pair{r.bf16_residual(), "bf16_residual"}}) {
      if (set) {
        violations.add(fmt::format("runtime.{}", field),
                       "applies to runtime.device \"cuda\" only (the device is \"{}\")", config.runtime().device());
      }
    }
  }
  const std::vector<std::string>& messages = violations.messages();
  if (messages.empty()) return;
  if (messages.size() == 1) throw UserError(messages.front());
  std::string all = fmt::format("{} invalid fields:", messages.size());
  for (const std::string& message : messages) all += "\n  " + message;
  throw UserError(all);
}

}  // namespace reclm
