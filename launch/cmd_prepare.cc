// `reclm prepare`: raw interaction logs + item metadata (or the built-in synthetic demo) → one
// dataset file (HDF5): ingest (data/ingest.h) → vocabulary and item tokens (data/item_vocab.h)
// → save (data/dataset_store.h). Every option is a field of the `prepare` config group; the flags
// below are shortcuts for the common ones and are applied before any --set.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset_store.h"
#include "data/ingest.h"
#include "data/item_vocab.h"
#include "data/synthetic_rec.h"
#include "launch/commands.h"
#include "runtime/config.h"
#include "runtime/errors.h"
#include "runtime/logging.h"
#include "runtime/timer.h"

namespace reclm::launch {
namespace {

struct PrepareArgs {
  ConfigArgs config;
  std::vector<std::string> shortcuts;  // "prepare.field=value", applied before --set
};

DuplicatePolicy duplicate_policy(config::PrepareConfig::Duplicates d) {
  switch (d) {
    case config::PrepareConfig::KEEP_ALL: return DuplicatePolicy::kKeepAll;
    case config::PrepareConfig::DROP_CONSECUTIVE: return DuplicatePolicy::kDropConsecutive;
    case config::PrepareConfig::KEEP_FIRST: return DuplicatePolicy::kKeepFirst;
    case config::PrepareConfig::KEEP_LAST: return DuplicatePolicy::kKeepLast;
  }
  return DuplicatePolicy::kKeepAll;
}

IngestOptions ingest_options(const Config& config) {
  const auto& p = config.prepare();
  IngestOptions o;
  o.sequences_path = p.sequences();
  o.table_path = p.table();
  o.table.delimiter = p.delimiter() == "\\t" ? "\t" : p.delimiter();
  o.table.header = p.header();
  o.table.user_column = p.user_column();
  o.table.item_column = p.item_column();
  o.table.rating_column = p.rating_column();
  o.table.timestamp_column = p.timestamp_column();
  o.table.min_rating = p.min_rating();
  o.items_path = p.items();
  o.item_id_field = p.item_id_field();
  o.item_title_field = p.item_title_field();
  o.attributes_path = p.attributes();
  o.users_path = p.users();
  o.kcore = p.kcore();
  o.duplicates = duplicate_policy(p.duplicates());
  o.remap_items = p.remap_items();
  o.seed = config.runtime().seed();
  o.skip_bad_lines = p.skip_bad_lines();
  return o;
}

void report_ingest(const IngestReport& r) {
  log_info("read {} lines{}{}{}{}", r.lines_read,
           r.bad_lines ? fmt::format(", skipped {} malformed", r.bad_lines) : "",
           r.duplicates_dropped ? fmt::format(", dropped {} duplicates", r.duplicates_dropped) : "",
           r.below_min_rating ? fmt::format(", dropped {} below min_rating", r.below_min_rating) : "",
           r.kcore_rounds ? fmt::format(", k-core removed {} interactions in {} rounds",
                                        r.kcore_dropped_interactions, r.kcore_rounds)
                          : "");
  if (r.metadata_unmatched) log_info("{} metadata rows name items with no interactions (ignored)", r.metadata_unmatched);
  if (r.items_without_title) log_warn("{} items have no title", r.items_without_title);
}

void run_prepare(const PrepareArgs& args) {
  std::vector<std::string> overrides = args.shortcuts;
  overrides.insert(overrides.end(), args.config.overrides.begin(), args.config.overrides.end());
  const Config config = load_config(args.config.path, overrides);
  const auto& p = config.prepare();
  const int sources = (p.synthetic() ? 1 : 0) + (p.sequences().empty() ? 0 : 1) + (p.table().empty() ? 0 : 1);
  RECLM_USER_CHECK(sources == 1,
                   "reclm prepare needs exactly one input: --synthetic, --sequences FILE or --table "
                   "FILE (got {})", sources);
  Stopwatch clock;
  RecDataset dataset;
  if (p.synthetic()) {
    SyntheticRecOptions o;
    o.n_users = p.synthetic_users();
    o.n_items = p.synthetic_items();
    o.seed = config.runtime().seed();
    dataset = make_synthetic_dataset(o);
    log_info("synthetic dataset: seed {}", o.seed);
  } else {
    IngestReport report;
    dataset = ingest(ingest_options(config), &report);
    report_ingest(report);
  }
  VocabOptions vocab;
  vocab.tokenizer_dir = p.tokenizer();
  vocab.learned_vocab_size = p.learned_vocab_size();
  build_item_vocabulary(dataset, vocab);
  dataset.prepare_config = config_to_text(config);
  log_info("vocabulary: {} tokens = {} text + 8 special + {} items + {} attributes{}",
           dataset.vocab.vocab_size, dataset.vocab.text_size, dataset.vocab.items.count,
           dataset.vocab.attributes.count,
           p.tokenizer().empty() ? " (BPE learned from the item text)" : " (tokenizer " + p.tokenizer() + ")");
  std::fputs(describe_statistics(dataset).c_str(), stdout);
  const std::filesystem::path output(p.output());
  if (output.has_parent_path()) {
    std::error_code error;
    std::filesystem::create_directories(output.parent_path(), error);
    RECLM_USER_CHECK(!error, "prepare.output: cannot create directory {}: {}",
                     output.parent_path().string(), error.message());
  }
  save_dataset(output, dataset);
  log_info("wrote {} in {:.1f} s", p.output(), clock.seconds());
}

}  // namespace

void register_prepare_command(CLI::App& app) {
  auto args = std::make_shared<PrepareArgs>();
  CLI::App* cmd = app.add_subcommand(
      "prepare", "Turn interaction logs + item metadata (or --synthetic) into a dataset file");
  add_config_options(cmd, &args->config);
  // Each shortcut becomes "prepare.<field>=<value>".
  auto shortcut = [cmd, args](const std::string& flag, const std::string& field,
                              const std::string& help) {
    cmd->add_option_function<std::string>(
        flag, [args, field](const std::string& v) { args->shortcuts.push_back("prepare." + field + "=" + v); },
        help);
  };
  shortcut("--out,-o", "output", "Dataset file to write (prepare.output)");
  shortcut("--sequences", "sequences", "Per-user sequence file: `user item item ...`, oldest first");
  shortcut("--table", "table", "Interaction table: CSV/TSV, MovieLens ratings.dat (::) or u.data (tab)");
  shortcut("--items", "items", "Item metadata (TSV/CSV with header, JSON, JSONL): id → title");
  shortcut("--attributes", "attributes", "JSON object: item id → [attribute, ...]");
  shortcut("--users", "users", "User metadata (TSV/CSV with header)");
  shortcut("--kcore", "kcore", "Keep users and items with at least k interactions (repeated)");
  shortcut("--tokenizer", "tokenizer",
           "Tokenizer directory (tokenizer.json or GPT-2 encoder.json + vocab.bpe); default: learn BPE");
  cmd->add_flag_callback("--synthetic", [args] { args->shortcuts.push_back("prepare.synthetic=true"); },
                         "Write the built-in synthetic demo dataset");
  cmd->add_flag_callback("--skip-bad-lines", [args] { args->shortcuts.push_back("prepare.skip_bad_lines=true"); },
                         "Count and report malformed lines instead of stopping at the first");
  cmd->footer(
      "Examples:\n"
      "  reclm prepare --synthetic --out data/synthetic.h5\n"
      "  reclm prepare --sequences Beauty.txt --items items.tsv --attributes Beauty_item2attributes.json --out beauty.h5\n"
      "  reclm prepare --table ratings.dat --set prepare.rating_column=2 --set prepare.timestamp_column=3 "
      "--kcore 5 --out ml1m.h5\n"
      "Every option: the `prepare` group of configs/reclm.proto (reclm config prints it).");
  cmd->callback([args] { run_prepare(*args); });
}

}  // namespace reclm::launch
