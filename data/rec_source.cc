// RecSource: which user, which objective and which window each global sample gets, and how
// samples become micro-batches. The rules are stated in data/rec_source.h.
#include "data/rec_source.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "data/history_sampling.h"
#include "data/item_vocab.h"
#include "data/prompt_templates.h"
#include "data/text_lm_sample.h"
#include "runtime/errors.h"
#include "runtime/rng.h"

namespace reclm {

namespace {

enum class Objective { kNextItem, kInfill, kTextLm, kPrompt };

// One draw from `rng`; an objective of weight 0 is never chosen.
Objective choose_objective(const ObjectiveMix& mix, CounterRng& rng) {
  const double total = mix.next_item + mix.infill + mix.text_lm + mix.prompt;
  const double u = static_cast<double>(rng.uniform()) * total;
  if (u < mix.next_item) return Objective::kNextItem;
  if (u < mix.next_item + mix.infill) return Objective::kInfill;
  if (u < mix.next_item + mix.infill + mix.text_lm) return Objective::kTextLm;
  if (mix.prompt > 0) return Objective::kPrompt;
  // Float rounding at the very top of the range: the last objective with weight.
  if (mix.text_lm > 0) return Objective::kTextLm;
  if (mix.infill > 0) return Objective::kInfill;
  return Objective::kNextItem;
}

const char* rendering_name(ItemRendering rendering) {
  switch (rendering) {
    case ItemRendering::kId: return "id";
    case ItemRendering::kText: return "text";
    case ItemRendering::kIdText: return "id+text";
  }
  return "?";
}

void check_options(const RecDataset& dataset, const RecSourceOptions& o) {
  const ObjectiveMix& m = o.mix;
  for (const auto& [field, weight] :
       {std::pair{"data.next_item_weight", m.next_item}, std::pair{"data.infill_weight", m.infill},
        std::pair{"data.text_lm_weight", m.text_lm}, std::pair{"data.prompt_weight", m.prompt}}) {
    RECLM_USER_CHECK(std::isfinite(weight) && weight >= 0, "{} must be finite and >= 0, got {}",
                     field, weight);
  }
  RECLM_USER_CHECK(m.next_item + m.infill + m.text_lm + m.prompt > 0,
                   "the objective mix (data.next_item_weight, data.infill_weight, "
                   "data.text_lm_weight, data.prompt_weight) needs at least one weight > 0");
  RECLM_USER_CHECK(o.max_seq_len >= 2, "data.seq_len must be >= 2, got {}", o.max_seq_len);
  RECLM_USER_CHECK(o.micro_batch >= 1, "train.micro_batch must be >= 1, got {}", o.micro_batch);
  RECLM_USER_CHECK(o.grad_accum >= 1, "train.grad_accum must be >= 1, got {}", o.grad_accum);
  RECLM_CHECK(o.world >= 1 && o.rank >= 0 && o.rank < o.world, "rank {} of world {}", o.rank,
              o.world);
  RECLM_USER_CHECK(m.text_lm == 0 || !dataset.items.title_tokens.empty(),
                   "{}: data.text_lm_weight is {} but no item has a title to model",
                   dataset.source, m.text_lm);
}

}  // namespace

struct RecSource::Impl {
  const RecDataset& dataset;
  RecSourceOptions options;
  std::vector<int64_t> train_users;  // users whose training prefix has ≥ 2 items, in user order
  std::vector<int64_t> val_users;    // users with a validation target, in user order
  std::vector<const PromptTemplate*> templates;  // trainable: not held out, family usable
  std::optional<BpeTokenizer> tokenizer;         // only for prompts
  bool item_classes = false;  // softmax over the item tokens only (ID next-item training)

  Impl(const RecDataset& d, RecSourceOptions o) : dataset(d), options(std::move(o)) {}

  // Global sample `s`; `order` is epoch_order of s's epoch.
  Sample sample(int64_t s, const std::vector<int64_t>& order) const;
  Batch batch_from(int64_t first_sample) const;
};

Sample RecSource::Impl::sample(int64_t s, const std::vector<int64_t>& order) const {
  const auto n_train = static_cast<int64_t>(train_users.size());
  const int64_t epoch = s / n_train;
  const int64_t user = train_users[order[s % n_train]];
  CounterRng rng(options.seed, RngPurpose::kDataSample, static_cast<uint64_t>(epoch), 0,
                 static_cast<uint64_t>(s));
  const Objective objective = choose_objective(options.mix, rng);

  const std::span<const int32_t> prefix = split_view(dataset.users, user, Split::kTrain).history;
  HistoryWindow window{0, static_cast<int32_t>(prefix.size())};
  if (options.history_sampling) window = sample_history_window(window.end, rng);
  const auto items = prefix.subspan(window.begin, window.end - window.begin);

  const RenderOptions& render = options.render;
  const bool two_d = options.positions_2d;
  const int32_t max_tokens = options.max_seq_len;
  switch (objective) {
    case Objective::kInfill: {
      CounterRng masking(options.seed, RngPurpose::kMasking, static_cast<uint64_t>(epoch), 0,
                         static_cast<uint64_t>(s));
      return item_infill_sample(dataset, items, render, options.infill, two_d, max_tokens,
                                masking);
    }
    case Objective::kTextLm: {
      Sample text = text_lm_sample(dataset, items, two_d, max_tokens);
      if (text.size() > 0) return text;
      break;  // none of these items has a title: a next-item sample instead
    }
    case Objective::kPrompt: {
      const PromptTemplate& tmpl = *templates[rng.below(templates.size())];
      const int32_t target = items.back();
      const auto position = dataset.users.offsets[user] + window.end - 1;
      const float rating =
          dataset.users.ratings.empty() ? 0.0f : dataset.users.ratings[position];
      return prompt_sample(dataset, *tokenizer, tmpl, user, items.first(items.size() - 1),
                           target, rating, render, two_d, max_tokens, rng);
    }
    case Objective::kNextItem:
      break;
  }
  return next_item_sample(dataset, items, render, two_d, max_tokens, /*only_last=*/false,
                          options.title_loss_weight);
}

Batch RecSource::Impl::batch_from(int64_t first_sample) const {
  // The epoch order is recomputed per batch (O(users) draws, cheap next to rendering) and again
  // when the batch crosses into the next epoch.
  const auto n_train = static_cast<int64_t>(train_users.size());
  int64_t order_epoch = -1;
  std::vector<int64_t> order;
  Batch batch;
  for (int i = 0; i < options.micro_batch; ++i) {
    const int64_t s = first_sample + i;
    if (s / n_train != order_epoch) {
      order_epoch = s / n_train;
      order = epoch_order(n_train, options.seed, order_epoch);
    }
    append_sample(batch, sample(s, order));
  }
  if (item_classes) {
    batch.class_begin = dataset.vocab.items.first;
    batch.class_count = dataset.vocab.items.count;
  }
  return batch;
}

RecSource::RecSource(const RecDataset& dataset, RecSourceOptions options) {
  check_options(dataset, options);
  auto impl = std::make_shared<Impl>(dataset, std::move(options));
  const RecSourceOptions& o = impl->options;
  const UserSequences& users = dataset.users;
  for (int64_t u = 0; u < users.size(); ++u) {
    if (split_view(users, u, Split::kTrain).history.size() >= 2) impl->train_users.push_back(u);
    if (split_view(users, u, Split::kValidation).has_target) impl->val_users.push_back(u);
  }
  RECLM_USER_CHECK(!impl->train_users.empty(),
                   "{}: no user has a training prefix of at least 2 items ({} users); "
                   "next-item training needs one item to predict from and one to predict",
                   dataset.source, users.size());

  // Held-out names are checked even when prompts are not trained: a typo should not pass.
  std::vector<std::string> held_out;
  for (const std::string& name : o.held_out_prompts) {
    held_out.push_back(find_prompt_template(name).name);
  }
  if (o.mix.prompt > 0) {
    for (const PromptTemplate& t : prompt_templates()) {
      const bool is_held_out = std::find(held_out.begin(), held_out.end(), t.name) != held_out.end();
      const bool usable = t.family != PromptFamily::kRating || !users.ratings.empty();
      if (!is_held_out && usable) impl->templates.push_back(&t);
    }
    RECLM_USER_CHECK(!impl->templates.empty(),
                     "{}: data.prompt_weight is {} but data.held_out_prompts leaves no template "
                     "to train on{}",
                     dataset.source, o.mix.prompt,
                     users.ratings.empty() ? " (rating templates need ratings)" : "");
    impl->tokenizer.emplace(dataset_tokenizer(dataset));
  }

  // ID rendering and next-item alone, with no attributes or no loss on them (title_loss_weight
  // 0: they are input only): every weighted target is an item token, so the softmax can run over
  // the items only (SASRec with cross-entropy).
  impl->item_classes = o.render.rendering == ItemRendering::kId &&
                       (!o.render.attributes || o.title_loss_weight == 0) && o.mix.infill == 0 &&
                       o.mix.text_lm == 0 && o.mix.prompt == 0;
  impl_ = std::move(impl);
}

LoaderCursor RecSource::cursor(int64_t step, int micro) const {
  const RecSourceOptions& o = impl_->options;
  LoaderCursor c;
  c.next_sample = (step * o.grad_accum + micro) * o.world * static_cast<int64_t>(o.micro_batch);
  c.epoch = c.next_sample / static_cast<int64_t>(impl_->train_users.size());
  return c;
}

Batch RecSource::batch_at(const LoaderCursor& cursor) const {
  RECLM_CHECK(cursor.next_sample >= 0, "negative loader cursor {}", cursor.next_sample);
  const RecSourceOptions& o = impl_->options;
  return impl_->batch_from(cursor.next_sample + static_cast<int64_t>(o.rank) * o.micro_batch);
}

Batch RecSource::train_batch(int64_t step, int micro) const {
  RECLM_CHECK(step >= 0 && micro >= 0 && micro < impl_->options.grad_accum,
              "train_batch(step {}, micro {}) with grad_accum {}", step, micro,
              impl_->options.grad_accum);
  return batch_at(cursor(step, micro));
}

Batch RecSource::val_batch(int index) const {
  const Impl& impl = *impl_;
  const RecDataset& dataset = impl.dataset;
  RECLM_USER_CHECK(!impl.val_users.empty(),
                   "{}: no user has a validation target (a user needs at least 3 items); set "
                   "train.val_batches to 0 or use a dataset with longer histories",
                   dataset.source);
  const RecSourceOptions& o = impl.options;
  const auto n_val = static_cast<int64_t>(impl.val_users.size());
  Batch batch;
  std::vector<int32_t> items;
  for (int i = 0; i < o.micro_batch; ++i) {
    const int64_t first = (static_cast<int64_t>(index) * o.world + o.rank) * o.micro_batch;
    const int64_t k = (first + i) % n_val;
    const SplitView view = split_view(dataset.users, impl.val_users[k], Split::kValidation);
    items.assign(view.history.begin(), view.history.end());
    items.push_back(view.target);
    append_sample(batch, next_item_sample(dataset, items, o.render, o.positions_2d,
                                          o.max_seq_len, /*only_last=*/true,
                                          o.title_loss_weight));
  }
  if (impl.item_classes) {
    batch.class_begin = dataset.vocab.items.first;
    batch.class_count = dataset.vocab.items.count;
  }
  return batch;
}

int64_t RecSource::max_batch_tokens() const {
  return static_cast<int64_t>(impl_->options.micro_batch) * impl_->options.max_seq_len;
}

int64_t RecSource::min_vocab_size() const { return impl_->dataset.vocab.vocab_size; }

std::string RecSource::describe() const {
  const Impl& impl = *impl_;
  const RecSourceOptions& o = impl.options;
  const ObjectiveMix& m = o.mix;
  const double total = m.next_item + m.infill + m.text_lm + m.prompt;
  return fmt::format(
      "{}: {} users ({} train, {} with a validation target), {} items; objectives next-item "
      "{:.2f} infill {:.2f} text-lm {:.2f} prompt {:.2f}; rendering {}{}, {} positions{}{}",
      impl.dataset.source, impl.dataset.users.size(), impl.train_users.size(),
      impl.val_users.size(), impl.dataset.items.size(), m.next_item / total, m.infill / total,
      m.text_lm / total, m.prompt / total, rendering_name(o.render.rendering),
      o.render.attributes ? "+attributes" : "", o.positions_2d ? "2D" : "1D",
      o.history_sampling ? ", history sampling" : "",
      impl.item_classes ? ", softmax over item tokens" : "");
}

}  // namespace reclm
