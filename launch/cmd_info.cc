// `reclm info PATH [--verify]`: what is inside a dataset file (statistics, vocabulary layout, how
// it was prepared), a training run directory (its config and weights), a checkpoint (step,
// progress, tensors; --verify re-reads every tensor against its checksum), a checkpoint root (its
// committed steps) or a Hugging Face export (architecture, tensors, items).
#include <fmt/format.h>
#include <hdf5.h>

#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include <fstream>

#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/train_checkpoint.h"
#include "data/dataset_store.h"
#include "launch/commands.h"
#include "runtime/config.h"
#include "runtime/errors.h"
#include "runtime/hdf5_file.h"
#include "trainer/param_layout.h"
#include "trainer/weights_file.h"

namespace reclm::launch {
namespace {

void print_dataset(const std::filesystem::path& path) {
  const RecDataset d = load_dataset(path);
  std::printf("dataset %s (format version %d)\n", path.c_str(), kDatasetFormatVersion);
  std::fputs(describe_statistics(d).c_str(), stdout);
  const VocabLayout& v = d.vocab;
  std::printf("vocabulary: %d tokens: text [0, %d), specials [%d, %d), items [%d, %d), "
              "attributes [%d, %d); tokenizer fingerprint %016llx\n",
              v.vocab_size, v.text_size, v.special_first, v.special_first + 8, v.items.first,
              v.items.first + v.items.count, v.attributes.first,
              v.attributes.first + v.attributes.count,
              static_cast<unsigned long long>(d.tokenizer_fingerprint));
  std::printf("source: %s\n", d.source.c_str());
}

namespace fs = std::filesystem;

void print_architecture(const Config& config) {
  const ModelDims d = model_dims(config.model());
  const ParamLayout layout(d);
  std::printf("model: %.2fM parameters, %lld layers, d_model %lld, %lld heads (%lld kv), d_ff %lld, "
              "vocab %lld, %s positions, %s embeddings%s\n",
              layout.num_parameters() / 1e6, static_cast<long long>(d.n_layers),
              static_cast<long long>(d.d_model), static_cast<long long>(d.n_heads),
              static_cast<long long>(d.n_kv_heads), static_cast<long long>(d.d_ff),
              static_cast<long long>(d.vocab), d.positions_2d ? "2D" : "1D",
              d.tied ? "tied" : "untied",
              config.model().lora().rank() > 0
                  ? fmt::format(", LoRA rank {}", config.model().lora().rank()).c_str()
                  : "");
  std::printf("dataset: %s\n", config.data().dataset().empty() ? "(text corpus)" : config.data().dataset().c_str());
}

// A weights file (model.h5, `reclm export --format hdf5`) rather than a dataset.
bool is_weights_file(const fs::path& path) {
  const hdf5::Reader file(path);
  return file.has_attribute("config") && file.has_dataset("/model.embed_tokens.weight");
}

void print_checkpoint(const fs::path& dir, bool verify) {
  const checkpoint::Manifest m = read_manifest(dir);
  std::printf("checkpoint %s (format version %d)\nstep %lld of %lld, %lld tokens seen, %lld "
              "skipped steps, lr %.4g, saved at unix time %lld by %d rank(s)\n",
              dir.c_str(), m.format_version(), static_cast<long long>(m.step()),
              static_cast<long long>(m.config().train().steps()),
              static_cast<long long>(m.tokens_seen()), static_cast<long long>(m.skipped_steps()),
              m.learning_rate(), static_cast<long long>(m.unix_time()), m.world_size());
  print_architecture(m.config());
  std::printf("tensors: %d in model.h5; optimizer %s, %lld updates, %d shard(s)\n",
              m.tensors_size(), m.optimizer().c_str(), static_cast<long long>(m.optimizer_steps()),
              m.optimizer_shards_size());
  if (verify) {
    const int64_t n = verify_checkpoint_files(dir);
    std::printf("verified: %lld values, every checksum matches\n", static_cast<long long>(n));
  }
}

void print_checkpoint_root(const fs::path& root, bool verify) {
  const std::vector<int64_t> steps = committed_steps(root);
  const std::optional<fs::path> latest = latest_checkpoint(root);
  std::printf("checkpoint root %s: %zu checkpoint(s), steps", root.c_str(), steps.size());
  for (int64_t step : steps) std::printf(" %lld", static_cast<long long>(step));
  std::printf("\n");
  if (latest) {
    std::printf("latest: ");
    print_checkpoint(*latest, verify);
  }
}

void print_export(const fs::path& dir) {
  std::ifstream file(dir / "config.json");
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& e) {
    throw_user_error("{}: not valid JSON: {}", (dir / "config.json").string(), e.what());
  }
  std::printf("Hugging Face export %s: %s, %s\n", dir.c_str(),
              config.value("architectures", nlohmann::json::array()).dump().c_str(),
              config.value("torch_dtype", std::string("?")).c_str());
  std::printf("model: %d layers, hidden %d, %d heads (%d kv), intermediate %d, vocab %d%s\n",
              config.value("num_hidden_layers", 0), config.value("hidden_size", 0),
              config.value("num_attention_heads", 0), config.value("num_key_value_heads", 0),
              config.value("intermediate_size", 0), config.value("vocab_size", 0),
              config.contains("reclm_positions") ? ", 2D positions (reclm rule)" : "");
  if (fs::exists(dir / "model.safetensors")) {
    const SafetensorsFile weights = SafetensorsFile::open(dir / "model.safetensors");
    int64_t values = 0;
    for (const std::string& name : weights.names()) values += weights.element_count(name);
    std::printf("model.safetensors: %zu tensors, %.2fM values\n", weights.names().size(), values / 1e6);
  }
  if (std::ifstream items(dir / "item_map.tsv"); items) {
    int64_t lines = 0;
    for (std::string line; std::getline(items, line);) ++lines;
    std::printf("item_map.tsv: %lld items\n", static_cast<long long>(std::max<int64_t>(0, lines - 1)));
  }
  if (fs::exists(dir / "adapter" / "adapter_config.json")) std::printf("adapter/: PEFT LoRA adapter\n");
}

void print_run(const fs::path& dir, bool verify) {
  const auto weights = dir / "model.h5";
  RECLM_USER_CHECK(fs::exists(weights), "{}: no model.h5, manifest.pb, latest or config.json "
                   "(not a run, checkpoint or export)", dir.string());
  const Config config = parse_config_text(read_weights_config(weights), weights.string());
  std::printf("run %s\nweights: %s\n", dir.c_str(), weights.c_str());
  print_architecture(config);
  const fs::path root = config.checkpoint().dir().empty() ? dir / "checkpoints"
                                                          : fs::path(config.checkpoint().dir());
  if (fs::exists(root / "latest")) print_checkpoint_root(root, verify);
}

}  // namespace

void register_info_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto verify = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "info", "Describe a dataset file, a run directory, a checkpoint or a Hugging Face export");
  cmd->add_option("path", *path, "Dataset file (.h5), run directory, checkpoint (step_*), "
                                 "checkpoint root or export directory")->required();
  cmd->add_flag("--verify", *verify, "Checkpoints: re-read every tensor and check its checksum");
  cmd->callback([path, verify] {
    const fs::path p(*path);
    RECLM_USER_CHECK(fs::exists(p), "{}: no such file or directory", p.string());
    if (!fs::is_directory(p)) {
      if (is_weights_file(p)) {
        std::printf("weights %s\n", p.c_str());
        print_architecture(parse_config_text(read_weights_config(p), p.string()));
      } else {
        print_dataset(p);
      }
    } else if (fs::exists(p / "manifest.pb")) {
      print_checkpoint(p, *verify);
    } else if (fs::exists(p / "latest")) {
      print_checkpoint_root(p, *verify);
    } else if (fs::exists(p / "config.json")) {
      print_export(p);
    } else {
      print_run(p, *verify);
    }
  });
}

}  // namespace reclm::launch
