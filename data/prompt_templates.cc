#include "data/prompt_templates.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/errors.h"

namespace reclm {

namespace {

constexpr int32_t kDirectCandidates = 20;  // P5's direct recommendation: target + 19 others

// What a piece of a template stands for: literal text ({user} already filled in) or a slot.
enum class Slot { kText, kHistory, kCandidates, kItem };
struct Piece {
  Slot slot;
  std::string text;  // kText only
};

const char* family_name(PromptFamily family) {
  switch (family) {
    case PromptFamily::kSequential:
      return "sequential";
    case PromptFamily::kDirect:
      return "direct";
    case PromptFamily::kRating:
      return "rating";
  }
  return "?";
}

// Splits the wording at its placeholders. The templates are ours, so a malformed one is an
// internal error; each family must have exactly the slots it fills.
std::vector<Piece> parse_template(const PromptTemplate& tmpl, const std::string& user_name) {
  std::vector<Piece> pieces;
  std::string text;
  int history = 0, candidates = 0, item = 0;
  for (size_t i = 0; i < tmpl.text.size();) {
    if (tmpl.text[i] != '{') {
      text += tmpl.text[i++];
      continue;
    }
    const size_t close = tmpl.text.find('}', i);
    RECLM_CHECK(close != std::string::npos, "template {}: unclosed placeholder", tmpl.name);
    const std::string name = tmpl.text.substr(i + 1, close - i - 1);
    i = close + 1;
    if (name == "user") {
      text += user_name;
      continue;
    }
    RECLM_CHECK(name == "history" || name == "candidates" || name == "item",
                "template {}: unknown placeholder {{{}}}", tmpl.name, name);
    const Slot slot = name == "history"      ? Slot::kHistory
                      : name == "candidates" ? Slot::kCandidates
                                             : Slot::kItem;
    ++(slot == Slot::kHistory ? history : slot == Slot::kCandidates ? candidates : item);
    if (!text.empty()) pieces.push_back({Slot::kText, std::move(text)});
    text.clear();
    pieces.push_back({slot, ""});
  }
  if (!text.empty()) pieces.push_back({Slot::kText, std::move(text)});
  RECLM_CHECK(history == 1 && candidates == (tmpl.family == PromptFamily::kDirect ? 1 : 0) &&
                  item == (tmpl.family == PromptFamily::kRating ? 1 : 0),
              "template {} ({}) has {} {{history}}, {} {{candidates}}, {} {{item}}", tmpl.name,
              family_name(tmpl.family), history, candidates, item);
  return pieces;
}

// "4" for 4, "4.5" for 4.5: the shortest text that reads back as the same float.
std::string rating_text(float rating) { return fmt::format("{}", rating); }

// target + up to 19 items the user never had (not in the user's whole sequence nor in
// `history`), in random order. Rejection sampling while most of the catalog is eligible;
// otherwise an explicit list of the eligible items (small catalogs, heavy users).
std::vector<int32_t> direct_candidates(const RecDataset& dataset, int64_t user,
                                       std::span<const int32_t> history, int32_t target,
                                       CounterRng& rng) {
  const auto whole = dataset.users.history(user);
  std::vector<int32_t> excluded(whole.begin(), whole.end());
  excluded.insert(excluded.end(), history.begin(), history.end());
  excluded.push_back(target);
  std::sort(excluded.begin(), excluded.end());
  excluded.erase(std::unique(excluded.begin(), excluded.end()), excluded.end());
  auto is_excluded = [&](int32_t item) {
    return std::binary_search(excluded.begin(), excluded.end(), item);
  };
  const int32_t n_items = dataset.items.size();
  const auto eligible = n_items - static_cast<int32_t>(excluded.size());
  const int32_t want = std::min(kDirectCandidates - 1, eligible);

  std::vector<int32_t> chosen;
  if (2 * (eligible - want) >= n_items) {
    while (static_cast<int32_t>(chosen.size()) < want) {
      const auto item = static_cast<int32_t>(rng.below(static_cast<uint64_t>(n_items)));
      if (is_excluded(item) || std::find(chosen.begin(), chosen.end(), item) != chosen.end()) {
        continue;
      }
      chosen.push_back(item);
    }
  } else {
    std::vector<int32_t> pool;
    for (int32_t item = 0; item < n_items; ++item)
      if (!is_excluded(item)) pool.push_back(item);
    for (int32_t i = 0; i < want; ++i) {
      const auto j = i + static_cast<int32_t>(rng.below(pool.size() - static_cast<size_t>(i)));
      std::swap(pool[i], pool[j]);
    }
    chosen.assign(pool.begin(), pool.begin() + want);
  }
  chosen.push_back(target);
  for (size_t i = chosen.size(); i > 1; --i) std::swap(chosen[i - 1], chosen[rng.below(i)]);
  return chosen;
}

std::vector<int32_t> entity_tokens(const RecDataset& dataset, int32_t item,
                                   const RenderOptions& render) {
  std::vector<int32_t> tokens;
  append_item_tokens(dataset, item, render, tokens);
  return tokens;
}

// Tokens of entities joined by the separator.
int64_t list_length(const std::vector<std::vector<int32_t>>& entities, size_t separator) {
  int64_t n = 0;
  for (const auto& e : entities) n += static_cast<int64_t>(e.size());
  if (!entities.empty()) n += static_cast<int64_t>(separator * (entities.size() - 1));
  return n;
}

// Everything a prompt sample is made of, before assembly.
struct PromptParts {
  std::vector<Piece> pieces;
  std::vector<std::vector<int32_t>> text;        // per piece (empty for slots)
  std::vector<int32_t> separator;                // between the entities of a list: ", "
  std::vector<std::vector<int32_t>> history;     // entities, chronological, cropped
  std::vector<std::vector<int32_t>> candidates;  // entities
  std::vector<int32_t> item;                     // the rated item's entity
  std::vector<int32_t> answer;                   // empty for an inference prompt
  bool answer_is_entity = false;
};

// Fits the prompt into max_tokens: first the most recent history items that fit, down to none;
// if even that is too long, non-target candidates go from the end of the (shuffled) list.
// `target_candidate` is the target's index in parts.candidates, -1 when there are none.
void crop_to_fit(const RecDataset& dataset, const PromptTemplate& tmpl,
                 std::span<const int32_t> history, const RenderOptions& render, int32_t max_tokens,
                 int32_t target_candidate, PromptParts& parts) {
  auto fixed = [&] {
    int64_t n = 1 + static_cast<int64_t>(parts.item.size() + parts.answer.size());
    for (const auto& t : parts.text) n += static_cast<int64_t>(t.size());
    return n + list_length(parts.candidates, parts.separator.size());
  };
  while (fixed() > max_tokens && parts.candidates.size() > 1) {
    const auto last = static_cast<int32_t>(parts.candidates.size()) - 1;
    const int32_t drop = last == target_candidate ? last - 1 : last;
    parts.candidates.erase(parts.candidates.begin() + drop);
    if (drop < target_candidate) --target_candidate;
  }
  const int64_t used = fixed();
  RECLM_USER_CHECK(used <= max_tokens,
                   "{}: prompt template '{}' needs {} tokens without any history, more than "
                   "data.seq_len = {}; raise data.seq_len or hold the template out",
                   dataset.source, tmpl.name, used, max_tokens);
  int64_t budget = max_tokens - used;
  size_t kept = 0;
  for (size_t k = history.size(); k-- > 0;) {
    std::vector<int32_t> e = entity_tokens(dataset, history[k], render);
    const auto cost = static_cast<int64_t>(e.size() + (kept > 0 ? parts.separator.size() : 0));
    if (cost > budget) break;
    budget -= cost;
    parts.history.push_back(std::move(e));
    ++kept;
  }
  std::reverse(parts.history.begin(), parts.history.end());
}

// [BOS] pieces answer, next-token targets, weight 1 exactly on the positions predicting the
// answer. Intra positions: 0 for text, 1..len inside each entity.
Sample assemble(const VocabLayout& vocab, const PromptParts& parts, bool positions_2d) {
  Sample s;
  std::vector<int32_t> intra;
  auto add_text = [&](const std::vector<int32_t>& tokens) {
    s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
    intra.insert(intra.end(), tokens.size(), 0);
  };
  auto add_entity = [&](const std::vector<int32_t>& tokens) {
    s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
    for (size_t j = 1; j <= tokens.size(); ++j) intra.push_back(static_cast<int32_t>(j));
  };
  auto add_list = [&](const std::vector<std::vector<int32_t>>& entities) {
    for (size_t e = 0; e < entities.size(); ++e) {
      if (e > 0) add_text(parts.separator);
      add_entity(entities[e]);
    }
  };
  add_text({vocab.bos()});
  for (size_t p = 0; p < parts.pieces.size(); ++p) {
    switch (parts.pieces[p].slot) {
      case Slot::kText:
        add_text(parts.text[p]);
        break;
      case Slot::kHistory:
        add_list(parts.history);
        break;
      case Slot::kCandidates:
        add_list(parts.candidates);
        break;
      case Slot::kItem:
        add_entity(parts.item);
        break;
    }
  }
  const int32_t answer_begin = s.size();
  if (parts.answer_is_entity) {
    add_entity(parts.answer);
  } else {
    add_text(parts.answer);
  }

  const int32_t n = s.size();
  s.targets.assign(s.tokens.begin() + 1, s.tokens.end());
  s.targets.push_back(vocab.pad());
  s.loss_weights.assign(n, 0.0f);
  for (int32_t i = answer_begin - 1; i + 1 < n; ++i) s.loss_weights[i] = 1.0f;
  s.pos_inter.resize(n);
  for (int32_t i = 0; i < n; ++i) s.pos_inter[i] = i;
  if (positions_2d) s.pos_intra = std::move(intra);
  return s;
}

// Everything but the answer and the list/item slots, which the callers fill.
PromptParts prompt_parts(const RecDataset& dataset, const BpeTokenizer& tokenizer,
                         const PromptTemplate& tmpl, int64_t user) {
  RECLM_CHECK(user >= 0 && user < dataset.users.size(), "user {} outside [0, {})", user,
              dataset.users.size());
  RECLM_CHECK(tokenizer.find_token("[BOS]") == dataset.vocab.bos(),
              "the tokenizer's [BOS] is not the dataset's ({}): a tokenizer of another dataset",
              dataset.vocab.bos());
  PromptParts parts;
  parts.pieces = parse_template(tmpl, dataset.users.keys[user]);
  for (const Piece& piece : parts.pieces) {
    parts.text.push_back(piece.slot == Slot::kText ? tokenizer.encode(piece.text)
                                                   : std::vector<int32_t>{});
  }
  parts.separator = tokenizer.encode(", ");
  return parts;
}

}  // namespace

const std::vector<PromptTemplate>& prompt_templates() {
  // Answers follow the final newline: an item's entity, or the rating text and [EOS].
  static const std::vector<PromptTemplate> templates = {
      {"seq-1", PromptFamily::kSequential,
       "Customer {user} has bought {history} in this order. What will the customer buy next?\n"},
      {"seq-2", PromptFamily::kSequential,
       "Here is the purchase history of {user}: {history}. Recommend the next item for this "
       "user.\n"},
      {"seq-3", PromptFamily::kSequential,
       "{user} recently bought {history}. Which item is {user} most likely to buy next?\n"},
      {"direct-1", PromptFamily::kDirect,
       "Customer {user} has bought {history}. Which of these items should we recommend to the "
       "customer: {candidates}?\n"},
      {"direct-2", PromptFamily::kDirect,
       "Pick the item that {user} would like most from {candidates}, given that {user} bought "
       "{history}.\n"},
      {"rating-1", PromptFamily::kRating,
       "Customer {user} has bought {history}. What star rating from 1 to 5 would the customer "
       "give {item}?\n"},
      {"rating-2", PromptFamily::kRating,
       "How would {user}, who bought {history}, rate {item} on a scale of 1 to 5?\n"},
  };
  return templates;
}

const PromptTemplate& find_prompt_template(const std::string& name) {
  std::string names;
  for (const PromptTemplate& t : prompt_templates()) {
    if (t.name == name) return t;
    names += (names.empty() ? "" : ", ") + t.name;
  }
  throw_user_error("unknown prompt template '{}'; the templates are: {}", name, names);
}

Sample prompt_sample(const RecDataset& dataset, const BpeTokenizer& tokenizer,
                     const PromptTemplate& tmpl, int64_t user, std::span<const int32_t> history,
                     int32_t target, float rating, const RenderOptions& render, bool positions_2d,
                     int32_t max_tokens, CounterRng& rng) {
  RECLM_CHECK(target >= 0 && target < dataset.items.size(), "target item {} outside [0, {})",
              target, dataset.items.size());
  PromptParts parts = prompt_parts(dataset, tokenizer, tmpl, user);
  int32_t target_candidate = -1;
  switch (tmpl.family) {
    case PromptFamily::kSequential:
      break;
    case PromptFamily::kDirect: {
      const std::vector<int32_t> items = direct_candidates(dataset, user, history, target, rng);
      for (size_t c = 0; c < items.size(); ++c) {
        if (items[c] == target) target_candidate = static_cast<int32_t>(c);
        parts.candidates.push_back(entity_tokens(dataset, items[c], render));
      }
      break;
    }
    case PromptFamily::kRating:
      RECLM_CHECK(!dataset.users.ratings.empty(),
                  "rating template {} used on {}, which has no ratings", tmpl.name, dataset.source);
      parts.item = entity_tokens(dataset, target, render);
      break;
  }
  if (tmpl.family == PromptFamily::kRating) {
    parts.answer = tokenizer.encode(rating_text(rating));
    parts.answer.push_back(dataset.vocab.eos());
  } else {
    parts.answer = entity_tokens(dataset, target, render);
    parts.answer_is_entity = true;
  }
  crop_to_fit(dataset, tmpl, history, render, max_tokens, target_candidate, parts);
  return assemble(dataset.vocab, parts, positions_2d);
}

Sample sequential_prompt_for_eval(const RecDataset& dataset, const BpeTokenizer& tokenizer,
                                  const PromptTemplate& tmpl, int64_t user,
                                  std::span<const int32_t> history, const RenderOptions& render,
                                  bool positions_2d, int32_t max_tokens) {
  RECLM_USER_CHECK(tmpl.family == PromptFamily::kSequential,
                   "prompt template '{}' is a {} template; evaluating next-item prediction "
                   "needs a sequential one",
                   tmpl.name, family_name(tmpl.family));
  PromptParts parts = prompt_parts(dataset, tokenizer, tmpl, user);
  crop_to_fit(dataset, tmpl, history, render, max_tokens, -1, parts);
  Sample s = assemble(dataset.vocab, parts, positions_2d);
  std::fill(s.loss_weights.begin(), s.loss_weights.end(), 0.0f);
  return s;
}

}  // namespace reclm
