// `reclm info PATH`: what is inside a dataset file (statistics, vocabulary layout, how it was
// prepared) or a training run directory (its config and weights).
#include <fmt/format.h>
#include <hdf5.h>

#include <cstdio>
#include <filesystem>

#include "data/dataset_store.h"
#include "launch/commands.h"
#include "runtime/config.h"
#include "runtime/errors.h"
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

void print_run(const std::filesystem::path& dir) {
  const auto weights = dir / "model.h5";
  RECLM_USER_CHECK(std::filesystem::exists(weights), "{}: no model.h5 (not a finished run)", dir.string());
  const Config config = parse_config_text(read_weights_config(weights), weights.string());
  const ModelDims d = model_dims(config.model());
  const ParamLayout layout(d);
  std::printf("run %s\nweights: %s, %.2fM parameters, %lld layers, d_model %lld, %lld heads "
              "(%lld kv), d_ff %lld, vocab %lld, %s positions, %s embeddings\n",
              dir.c_str(), weights.c_str(), layout.num_parameters() / 1e6,
              static_cast<long long>(d.n_layers), static_cast<long long>(d.d_model),
              static_cast<long long>(d.n_heads), static_cast<long long>(d.n_kv_heads),
              static_cast<long long>(d.d_ff), static_cast<long long>(d.vocab),
              d.positions_2d ? "2D" : "1D", d.tied ? "tied" : "untied");
  std::printf("dataset: %s\n", config.data().dataset().empty() ? "(text corpus)" : config.data().dataset().c_str());
}

}  // namespace

void register_info_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("info", "Describe a dataset file or a training run directory");
  cmd->add_option("path", *path, "Dataset file (.h5) or run directory")->required();
  cmd->callback([path] {
    const std::filesystem::path p(*path);
    RECLM_USER_CHECK(std::filesystem::exists(p), "{}: no such file or directory", p.string());
    if (std::filesystem::is_directory(p)) {
      print_run(p);
    } else {
      print_dataset(p);
    }
  });
}

}  // namespace reclm::launch
