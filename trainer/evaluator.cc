// `reclm eval` / `reclm recommend`: every mode turns a batch of users into a score matrix
// [users, n_items] (logits, or log-probabilities with −∞ for items a beam never reached), and
// one ranking path (rank_all, pessimistic ties, optional history exclusion) turns it into ranks.
// Modes and their costs are described in evaluator.h and beam_search.h; so is how several ranks
// split the batches and combine their users' ranks.
#include "trainer/evaluator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "kernels/ops.h"
#include "runtime/errors.h"
#include "runtime/logging.h"
#include "runtime/progress.h"
#include "runtime/timer.h"
#include "data/item_vocab.h"
#include "data/prompt_templates.h"
#include "trainer/beam_search.h"
#include "trainer/title_trie.h"

namespace reclm {

const char* split_name(Split split) {
  switch (split) {
    case Split::kTrain: return "train";
    case Split::kValidation: return "validation";
    case Split::kTest: return "test";
  }
  return "?";
}

const char* eval_mode_name(EvalMode mode) {
  switch (mode) {
    case EvalMode::kItemScores: return "item_scores";
    case EvalMode::kBeamSearch: return "beam_search";
    case EvalMode::kTitleLikelihood: return "title_likelihood";
  }
  return "?";
}

namespace {

constexpr float kNotFound = -std::numeric_limits<float>::infinity();

// What a mode needs besides the model: for text modes the catalog's entity sequences (and trie),
// and how many history tokens fit before an entity is generated.
struct Scorer {
  Model& model;
  const RecDataset& dataset;
  const InferenceSetup& setup;
  EvalMode mode;
  int32_t beam_size = 0;
  const HiddenStateSource* hidden = nullptr;  // kItemScores' forwards on a device, or null
  ItemTokenSequences sequences;
  std::unique_ptr<TitleTrie> trie;
  int32_t prompt_budget = 0;  // max tokens of a history prompt

  Scorer(Model& m, const RecDataset& d, const InferenceSetup& s, EvalMode md, int32_t beam)
      : model(m), dataset(d), setup(s), mode(md), beam_size(beam) {
    RECLM_USER_CHECK(model.dims.vocab >= dataset.vocab.vocab_size,
                     "{}: the dataset's vocabulary has {} tokens, the model only {}",
                     dataset.source, dataset.vocab.vocab_size, model.dims.vocab);
    RECLM_USER_CHECK(dataset.items.size() > 0, "{}: no items to rank", dataset.source);
    prompt_budget = setup.max_seq_len;
    if (mode == EvalMode::kItemScores) {
      if (setup.render.rendering == ItemRendering::kText) {
        log_warn("item-score evaluation with text rendering: the model never reads item tokens, "
                 "so their scores carry little meaning (use beam_search or title_likelihood)");
      }
      return;
    }
    sequences = item_token_sequences(dataset, setup.render);
    if (mode == EvalMode::kBeamSearch) trie = std::make_unique<TitleTrie>(sequences);
    // The generated entity continues the prompt inside the same max_seq_len window.
    prompt_budget = setup.max_seq_len - (sequences.max_length() - 1);
    RECLM_USER_CHECK(prompt_budget >= 2,
                     "max_seq_len {} leaves no room for a history before a {}-token item",
                     setup.max_seq_len, sequences.max_length());
  }

  // Zero-shot evaluation of a P5 template (EvalOptions::prompt_template).
  const PromptTemplate* prompt_template = nullptr;
  std::optional<BpeTokenizer> tokenizer;
  void use_prompt_template(const std::string& name) {
    prompt_template = &find_prompt_template(name);
    RECLM_USER_CHECK(prompt_template->family == PromptFamily::kSequential,
                     "eval prompt template \"{}\" is not a sequential-recommendation template",
                     name);
    tokenizer = dataset_tokenizer(dataset);
  }

  // The model's input for `user` (used by prompt templates) after `history`.
  Sample prompt(int64_t user, std::span<const int32_t> history) const {
    Sample s = prompt_template
        ? sequential_prompt_for_eval(dataset, *tokenizer, *prompt_template, user, history,
                                     setup.render, setup.positions_2d, prompt_budget)
        : history_prompt(dataset, history, setup.render, setup.positions_2d, prompt_budget);
    RECLM_CHECK(s.size() > 0 && s.size() <= forward_tokens(),
                "a {}-token history prompt does not fit the {}-token arena", s.size(), forward_tokens());
    return s;
  }

  // Tokens one forward of this mode holds: the device's arena for item scores on a device, else
  // the host model's.
  int64_t forward_tokens() const {
    return hidden != nullptr && mode == EvalMode::kItemScores ? hidden->max_tokens : model.acts.max_tokens;
  }

  // Whether a batch's prompts must fit one forward (item scores; the text modes split their
  // forwards themselves, so only users_per_batch bounds their batches).
  bool needs_one_forward() const { return mode == EvalMode::kItemScores; }

  // scores [prompts.size(), n_items]
  void score(std::span<const Sample> prompts, float* scores) {
    const int64_t n_items = dataset.items.size();
    const int64_t B = static_cast<int64_t>(prompts.size());
    switch (mode) {
      case EvalMode::kItemScores: {
        const int64_t C = model.dims.d_model;
        Batch batch;
        for (const Sample& s : prompts) append_sample(batch, s);
        std::vector<float> last(B * C);  // [B, C] each segment's last hidden state
        if (hidden != nullptr) {
          std::vector<int32_t> rows(B);
          for (int64_t b = 0; b < B; ++b) rows[b] = batch.cu_seqlens[b + 1] - 1;
          hidden->forward(batch, rows, last.data());
        } else {
          forward_hidden(model, batch);
          for (int64_t b = 0; b < B; ++b) {
            std::copy_n(model.acts.final_normed + (batch.cu_seqlens[b + 1] - 1) * C, C,
                        last.data() + b * C);
          }
        }
        // scores = last · item_rowsᵀ, item rows [n_items, C] of the LM head (one sgemm)
        ops::linear_forward(scores, last.data(),
                            model.params.lm_head + int64_t{dataset.vocab.items.first} * C, B, C,
                            n_items);
        return;
      }
      case EvalMode::kBeamSearch: {
        const auto found = constrained_beam_search(model, *trie, prompts, beam_size);
        std::fill_n(scores, B * n_items, kNotFound);
        for (int64_t b = 0; b < B; ++b) {
          for (const ScoredItem& s : found[b]) scores[b * n_items + s.item] = static_cast<float>(s.logprob);
        }
        return;
      }
      case EvalMode::kTitleLikelihood: {
        const std::vector<double> ll = title_loglikelihoods(model, sequences, prompts);
        for (size_t i = 0; i < ll.size(); ++i) scores[i] = static_cast<float>(ll[i]);
        return;
      }
    }
  }
};

void check_options(const EvalOptions& options) {
  RECLM_USER_CHECK(options.split != Split::kTrain,
                   "eval split must be validation or test (training users have no target)");
  RECLM_USER_CHECK(!options.ks.empty(), "eval needs at least one cutoff K");
  for (const int k : options.ks) RECLM_USER_CHECK(k >= 1, "eval cutoff K = {} must be ≥ 1", k);
  RECLM_USER_CHECK(options.beam_size >= 1, "beam size {} must be ≥ 1", options.beam_size);
  RECLM_USER_CHECK(options.users_per_batch >= 1, "users per batch {} must be ≥ 1",
                   options.users_per_batch);
  RECLM_USER_CHECK(options.max_users >= 0, "max users {} must be ≥ 0", options.max_users);
}

// Users of the split that have a target, in id order, the first max_users of them if set.
std::vector<int64_t> users_with_target(const UserSequences& users, Split split, int64_t max_users) {
  std::vector<int64_t> out;
  for (int64_t u = 0; u < users.size(); ++u) {
    if (max_users > 0 && static_cast<int64_t>(out.size()) >= max_users) break;
    if (split_view(users, u, split).has_target) out.push_back(u);
  }
  return out;
}

// Batches as [begin, end) ranges of `users`: at most users_per_batch users, and for a mode that
// scores a batch in one forward, at most the arena's tokens.
std::vector<std::pair<size_t, size_t>> plan_batches(const Scorer& scorer, const RecDataset& dataset,
                                                    std::span<const int64_t> users, Split split,
                                                    int32_t users_per_batch) {
  std::vector<std::pair<size_t, size_t>> batches;
  size_t begin = 0;
  int64_t tokens = 0;
  for (size_t i = 0; i < users.size(); ++i) {
    const int64_t size = scorer.needs_one_forward()
        ? scorer.prompt(users[i], split_view(dataset.users, users[i], split).history).size() : 0;
    const bool full = i - begin == static_cast<size_t>(users_per_batch) ||
                      tokens + size > scorer.forward_tokens();
    if (i > begin && full) {
      batches.emplace_back(begin, i);
      begin = i;
      tokens = 0;
    }
    tokens += size;
  }
  if (begin < users.size()) batches.emplace_back(begin, users.size());
  return batches;
}

// Sums the per-user results of the ranks: each slot was written by exactly one rank and is zero
// on the others, so the double sum of small integers is exact in any order. Slots hold rank + 1,
// so a slot no rank wrote (0 after the sum) shows up as a broken partition.
//   user_ranks [2 · n_users]: model ranks, then popularity ranks
void sum_user_ranks(Communicator* comm, std::vector<double>& user_ranks) {
  if (comm != nullptr && comm->size() > 1) {
    comm->all_reduce(user_ranks.data(), static_cast<int64_t>(user_ranks.size()), ReduceOp::kSum);
  }
  for (size_t i = 0; i < user_ranks.size(); ++i) {
    RECLM_CHECK(user_ranks[i] >= 1.0, "evaluation slot {} of {} was scored by no rank", i,
                user_ranks.size());
  }
}

}  // namespace

EvalReport evaluate(Model& model, const RecDataset& dataset, const InferenceSetup& setup,
                    const EvalOptions& options, Communicator* comm, const HiddenStateSource* hidden) {
  check_options(options);
  Stopwatch clock;
  const int rank = comm != nullptr ? comm->rank() : 0;
  const int world = comm != nullptr ? comm->size() : 1;
  Scorer scorer(model, dataset, setup, options.mode, options.beam_size);
  scorer.hidden = hidden;
  if (!options.prompt_template.empty()) scorer.use_prompt_template(options.prompt_template);
  const int64_t n_items = dataset.items.size();
  const std::vector<int64_t> users = users_with_target(dataset.users, options.split, options.max_users);
  const auto n_users = static_cast<int64_t>(users.size());
  // The one-process plan on every rank; this rank scores batches rank, rank + world, ...
  const auto batches = plan_batches(scorer, dataset, users, options.split, options.users_per_batch);
  std::vector<std::pair<size_t, size_t>> my_batches;
  int64_t my_users = 0;
  for (size_t b = rank; b < batches.size(); b += world) {
    my_batches.push_back(batches[b]);
    my_users += static_cast<int64_t>(batches[b].second - batches[b].first);
  }
  if (world > 1) {
    log_debug("eval: rank {} of {} scores {} of {} users ({} of {} batches)", rank, world, my_users,
              n_users, my_batches.size(), batches.size());
  }
  const std::vector<float> popularity = popularity_scores(training_items(dataset.users), n_items);

  std::unique_ptr<ProgressBar> bar;
  if (options.progress && rank == 0 && my_batches.size() > 1) {
    const std::string label = world > 1 ? fmt::format("eval (rank 0 of {})", world) : "eval";
    bar = std::make_unique<ProgressBar>(my_users, label);
  }
  std::vector<double> user_ranks(2 * n_users, 0.0);  // model ranks + 1, popularity ranks + 1
  std::vector<float> scores;
  int64_t done = 0;
  for (const auto& [begin, end] : my_batches) {
    std::vector<Sample> prompts;
    std::vector<int32_t> targets;
    std::vector<int64_t> history_offsets = {0};  // CSR of each user's history (exclusion lists)
    std::vector<int32_t> history_items;
    for (size_t i = begin; i < end; ++i) {
      const SplitView view = split_view(dataset.users, users[i], options.split);
      prompts.push_back(scorer.prompt(users[i], view.history));
      targets.push_back(view.target);
      history_items.insert(history_items.end(), view.history.begin(), view.history.end());
      history_offsets.push_back(static_cast<int64_t>(history_items.size()));
    }
    UserItemLists excluded;
    if (options.exclude_history) excluded = {history_offsets, history_items};
    scores.resize(prompts.size() * n_items);
    scorer.score(prompts, scores.data());
    const std::vector<int64_t> model_ranks =
        rank_all(scores.data(), n_items, n_items, targets, excluded);
    const std::vector<int64_t> popularity_ranks =
        rank_all(popularity.data(), 0, n_items, targets, excluded);
    for (size_t i = begin; i < end; ++i) {
      user_ranks[i] = static_cast<double>(model_ranks[i - begin] + 1);
      user_ranks[n_users + i] = static_cast<double>(popularity_ranks[i - begin] + 1);
    }
    done += static_cast<int64_t>(end - begin);
    if (bar) bar->update(done);
  }
  if (bar) bar->finish();
  sum_user_ranks(comm, user_ranks);

  // Ranks below 2^53 are exact in double, so the round trip gives back the integers.
  RankingAccumulator model_ranks, popularity_ranks;
  for (int64_t i = 0; i < n_users; ++i) {
    model_ranks.add(static_cast<int64_t>(user_ranks[i]) - 1);
    popularity_ranks.add(static_cast<int64_t>(user_ranks[n_users + i]) - 1);
  }
  EvalReport report;
  report.split = split_name(options.split);
  report.mode = eval_mode_name(options.mode);
  report.exclude_history = options.exclude_history;
  report.ks = options.ks;
  report.n_users = n_users;
  report.model = model_ranks.result(options.ks);
  report.popularity = popularity_ranks.result(options.ks);
  report.seconds = clock.seconds();
  return report;
}

std::vector<Recommendation> recommend(Model& model, const RecDataset& dataset,
                                      const InferenceSetup& setup, EvalMode mode,
                                      std::span<const int32_t> history, int k,
                                      bool exclude_history) {
  RECLM_USER_CHECK(k >= 1, "recommend: k = {} must be ≥ 1", k);
  const int32_t n_items = dataset.items.size();
  for (const int32_t item : history) {
    RECLM_USER_CHECK(item >= 0 && item < n_items, "recommend: history item {} outside [0, {})",
                     item, n_items);
  }
  std::vector<char> is_excluded(n_items, 0);
  int32_t n_excluded = 0;
  if (exclude_history) {
    for (const int32_t item : history) n_excluded += !is_excluded[item]++;
  }
  // A beam wide enough that k items outside the history finish (at least min(beam, n_items) do).
  const int32_t beam = std::min(n_items, k + n_excluded);
  Scorer scorer(model, dataset, setup, mode, beam);
  const Sample prompt = scorer.prompt(-1, history);
  std::vector<float> scores(n_items);
  scorer.score(std::span<const Sample>(&prompt, 1), scores.data());

  std::vector<Recommendation> ranked;
  for (int32_t item = 0; item < n_items; ++item) {
    if (is_excluded[item]) continue;
    if (mode == EvalMode::kBeamSearch && scores[item] == kNotFound) continue;  // no beam finished it
    const float s = std::isnan(scores[item]) ? kNotFound : scores[item];  // NaN never ranks high
    ranked.push_back({item, s});
  }
  const size_t top = std::min(ranked.size(), static_cast<size_t>(k));
  std::partial_sort(ranked.begin(), ranked.begin() + top, ranked.end(),
                    [](const Recommendation& a, const Recommendation& b) {
                      return a.score > b.score || (a.score == b.score && a.item < b.item);
                    });
  ranked.resize(top);
  return ranked;
}

}  // namespace reclm
