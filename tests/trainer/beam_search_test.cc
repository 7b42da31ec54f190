// The item trie, constrained beam search and title log-likelihood: only real items come out,
// a wide beam finds every item with exactly its title log-likelihood, and generated tokens sit at
// the positions RecSysLLM's dynamic intra rule gives them.
#include <gtest/gtest.h>

#include <set>

#include "eval_test_util.h"
#include "trainer/beam_search.h"
#include "trainer/title_trie.h"

namespace reclm {
namespace {

using test::make_dataset;
using test::prefix_titles;

RenderOptions text_render() { return {ItemRendering::kText, false}; }

// Prompts of a few histories over the prefix catalog.
std::vector<Sample> prompts_for(const RecDataset& dataset, const RenderOptions& render,
                                bool positions_2d) {
  const std::vector<std::vector<int32_t>> histories = {{0, 3, 6}, {8}, {2, 2, 9, 4, 1}, {}};
  std::vector<Sample> prompts;
  for (const auto& h : histories) {
    prompts.push_back(history_prompt(dataset, h, render, positions_2d, 64));
  }
  return prompts;
}

TEST(TitleTrie, SharedPrefixesIdenticalTitlesAndPrefixItems) {
  const RecDataset dataset = make_dataset(prefix_titles(), {});
  const ItemTokenSequences seqs = item_token_sequences(dataset, text_render());
  ASSERT_EQ(seqs.size(), 10);
  EXPECT_EQ(std::vector<int32_t>(seqs.of(7).begin(), seqs.of(7).end()),
            std::vector<int32_t>{58 + 7});  // untitled: its ID token
  EXPECT_EQ(seqs.max_length(), 4);
  const TitleTrie trie(seqs);
  EXPECT_EQ(trie.n_items(), 10);
  EXPECT_EQ(trie.max_depth(), 4);
  // Root children: first tokens 1, 2, 6, 8, 12 and <item_7>, ascending.
  EXPECT_EQ(std::vector<int32_t>(trie.child_tokens(TitleTrie::kRoot).begin(),
                                 trie.child_tokens(TitleTrie::kRoot).end()),
            (std::vector<int32_t>{1, 2, 6, 8, 12, 65}));
  // Nodes: root, 1, 1-2, 1-2-3, 1-2-4, 1-5, 6, 1-2-3-7, 8, 8-9, 8-9-10, 8-9-10-11, 65, 2, 2-3,
  // 12, 12-13: every distinct prefix once.
  EXPECT_EQ(trie.n_nodes(), 17);
  const int32_t n123 = trie.find(std::vector<int32_t>{1, 2, 3});
  ASSERT_GE(n123, 0);
  EXPECT_EQ(std::vector<int32_t>(trie.items_ending_at(n123).begin(), trie.items_ending_at(n123).end()),
            std::vector<int32_t>{0});
  EXPECT_TRUE(trie.has_children(n123));  // item 4 continues item 0's title
  EXPECT_EQ(trie.child(n123, 7), trie.find(std::vector<int32_t>{1, 2, 3, 7}));
  const int32_t n6 = trie.find(std::vector<int32_t>{6});
  EXPECT_EQ(std::vector<int32_t>(trie.items_ending_at(n6).begin(), trie.items_ending_at(n6).end()),
            (std::vector<int32_t>{3, 5}));
  EXPECT_FALSE(trie.has_children(n6));
  const int32_t n12 = trie.find(std::vector<int32_t>{1, 2});
  EXPECT_TRUE(trie.items_ending_at(n12).empty());
  EXPECT_EQ(trie.find(std::vector<int32_t>{1, 3}), -1);
  EXPECT_EQ(trie.child(TitleTrie::kRoot, 4), -1);
  for (int32_t item = 0; item < seqs.size(); ++item) {  // every item ends where its sequence leads
    const auto ends = trie.items_ending_at(trie.find(seqs.of(item)));
    EXPECT_NE(std::find(ends.begin(), ends.end(), item), ends.end()) << item;
  }
}

TEST(TitleTrie, IdTextRenderingStartsWithTheItemToken) {
  const RecDataset dataset = make_dataset(prefix_titles(), {});
  const TitleTrie trie(item_token_sequences(dataset, {ItemRendering::kIdText, false}));
  EXPECT_EQ(trie.child_tokens(TitleTrie::kRoot).size(), 10u);  // one branch per item
  EXPECT_EQ(trie.max_depth(), 5);
  const int32_t n6 = trie.find(std::vector<int32_t>{58 + 5, 6});
  EXPECT_EQ(std::vector<int32_t>(trie.items_ending_at(n6).begin(), trie.items_ending_at(n6).end()),
            std::vector<int32_t>{5});
}

TEST(BeamSearch, ExtendSegmentContinuesInterAndCountsIntraFromOne) {
  const RecDataset dataset = make_dataset(prefix_titles(), {});
  const std::vector<int32_t> history = {2, 3};  // titles [1 5] and [6]
  const Sample prompt2d = history_prompt(dataset, history, text_render(), true, 64);
  ASSERT_EQ(prompt2d.tokens, (std::vector<int32_t>{51, 1, 5, 6}));
  ASSERT_EQ(prompt2d.pos_intra, (std::vector<int32_t>{0, 1, 2, 1}));
  const std::vector<int32_t> generated = {1, 2, 3};
  const Sample s = extend_segment(prompt2d, generated);
  EXPECT_EQ(s.tokens, (std::vector<int32_t>{51, 1, 5, 6, 1, 2, 3}));
  EXPECT_EQ(s.pos_inter, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(s.pos_intra, (std::vector<int32_t>{0, 1, 2, 1, 1, 2, 3}));
  EXPECT_EQ(s.loss_weights, std::vector<float>(7, 0.0f));
  EXPECT_EQ(s.targets.size(), 7u);

  // A prompt whose positions do not start at 0 (hand-made): generation continues from its last.
  Sample shifted = prompt2d;
  shifted.pos_inter = {10, 11, 12, 13};
  const std::vector<int32_t> one = {9};
  const Sample t = extend_segment(shifted, one);
  EXPECT_EQ(t.pos_inter.back(), 14);
  EXPECT_EQ(t.pos_intra.back(), 1);

  const Sample prompt1d = history_prompt(dataset, history, text_render(), false, 64);
  const Sample u = extend_segment(prompt1d, generated);
  EXPECT_EQ(u.pos_inter, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(u.pos_intra.empty());
}

struct RenderCase {
  const char* name;
  ItemRendering rendering;
  bool positions_2d;
};

class WideBeam : public ::testing::TestWithParam<RenderCase> {};

// With beam ≥ n_items the search is exhaustive: every item finishes, with the sum of its token
// log-probabilities — the title log-likelihood, which itself matches a one-segment double
// reference built with hand-written positions.
TEST_P(WideBeam, FindsEveryItemWithItsTitleLikelihood) {
  const RenderCase c = GetParam();
  const RenderOptions render{c.rendering, false};
  const RecDataset dataset = make_dataset(prefix_titles(), {});
  Model model = test::tiny_model(dataset, c.positions_2d, 96);
  const ItemTokenSequences seqs = item_token_sequences(dataset, render);
  const TitleTrie trie(seqs);
  const std::vector<Sample> prompts = prompts_for(dataset, render, c.positions_2d);
  const int32_t n = dataset.items.size();

  const auto found = constrained_beam_search(model, trie, prompts, n);
  const std::vector<double> ll = title_loglikelihoods(model, seqs, prompts);
  ASSERT_EQ(found.size(), prompts.size());
  ASSERT_EQ(ll.size(), prompts.size() * n);
  for (size_t p = 0; p < prompts.size(); ++p) {
    ASSERT_EQ(found[p].size(), static_cast<size_t>(n)) << "prompt " << p;
    std::set<int32_t> seen;
    for (size_t r = 0; r < found[p].size(); ++r) {
      const ScoredItem& s = found[p][r];
      EXPECT_TRUE(seen.insert(s.item).second) << "item " << s.item << " twice";
      EXPECT_NEAR(s.logprob, ll[p * n + s.item], 1e-4) << "prompt " << p << " item " << s.item;
      EXPECT_LT(s.logprob, 0.0);
      if (r > 0) {
        EXPECT_GE(found[p][r - 1].logprob, s.logprob);
      }
    }
    for (int32_t item = 0; item < n; ++item) {
      EXPECT_NEAR(ll[p * n + item], test::naive_entity_loglikelihood(model, prompts[p], seqs.of(item)),
                  1e-4)
          << "prompt " << p << " item " << item;
    }
  }
  // Identical titles (items 3 and 5 in text rendering) get the same score, up to the last bits:
  // they sit in different rows of the batched forward, and some BLAS kernels round a row by its
  // place in the block (OpenBLAS's Zen sgemm does).
  if (c.rendering == ItemRendering::kText) {
    for (size_t p = 0; p < prompts.size(); ++p) EXPECT_NEAR(ll[p * n + 3], ll[p * n + 5], 1e-5) << "prompt " << p;
  }
}

INSTANTIATE_TEST_SUITE_P(Renderings, WideBeam,
                         ::testing::Values(RenderCase{"text_1d", ItemRendering::kText, false},
                                           RenderCase{"text_2d", ItemRendering::kText, true},
                                           RenderCase{"idtext_2d", ItemRendering::kIdText, true},
                                           RenderCase{"id_1d", ItemRendering::kId, false}),
                         [](const auto& info) { return std::string(info.param.name); });

// A narrow beam on a random model over shared prefixes: only catalog items, each once, scored by
// their title likelihood, at least beam_size of them; identical titles finish together.
TEST(BeamSearch, NarrowBeamYieldsOnlyRealItems) {
  const RecDataset dataset = make_dataset(prefix_titles(), {});
  const ItemTokenSequences seqs = item_token_sequences(dataset, text_render());
  const TitleTrie trie(seqs);
  const int32_t n = dataset.items.size();
  for (const uint64_t seed : {1u, 2u, 3u}) {
    Model model = test::tiny_model(dataset, true, 96, seed);
    const std::vector<Sample> prompts = prompts_for(dataset, text_render(), true);
    const std::vector<double> ll = title_loglikelihoods(model, seqs, prompts);
    for (const int32_t beam : {1, 2, 3}) {
      const auto found = constrained_beam_search(model, trie, prompts, beam);
      for (size_t p = 0; p < prompts.size(); ++p) {
        EXPECT_GE(found[p].size(), static_cast<size_t>(beam));
        std::set<int32_t> seen;
        for (const ScoredItem& s : found[p]) {
          ASSERT_GE(s.item, 0);
          ASSERT_LT(s.item, n);
          EXPECT_TRUE(seen.insert(s.item).second);
          EXPECT_NEAR(s.logprob, ll[p * n + s.item], 1e-4);
        }
        EXPECT_EQ(seen.count(3), seen.count(5)) << "identical titles finish together";
      }
    }
  }
}

// The beam keeps the best partial sequences: with beam 1 the search is greedy over the trie.
TEST(BeamSearch, BeamOneIsGreedyOverTheTrie) {
  const RecDataset dataset = make_dataset(prefix_titles(), {});
  const ItemTokenSequences seqs = item_token_sequences(dataset, text_render());
  const TitleTrie trie(seqs);
  Model model = test::tiny_model(dataset, false, 96, 5);
  const std::vector<Sample> prompts = prompts_for(dataset, text_render(), false);
  const auto found = constrained_beam_search(model, trie, prompts, 1);
  for (size_t p = 0; p < prompts.size(); ++p) {
    // Walk the trie by hand, always taking the allowed token of highest probability.
    std::vector<int32_t> path;
    std::set<int32_t> expected;
    int32_t node = TitleTrie::kRoot;
    while (trie.has_children(node)) {
      const Sample s = extend_segment(prompts[p], path);
      const auto logits = test::naive_logits(model, s);
      int32_t best = -1;
      for (const int32_t token : trie.child_tokens(node)) {
        if (best < 0 || logits.back()[token] > logits.back()[best]) best = token;
      }
      path.push_back(best);
      node = trie.child(node, best);
      for (const int32_t item : trie.items_ending_at(node)) expected.insert(item);
    }
    std::set<int32_t> got;
    for (const ScoredItem& s : found[p]) got.insert(s.item);
    EXPECT_EQ(got, expected) << "prompt " << p;
  }
}

TEST(BeamSearch, TokenLogprobsSplitsForwardsToFitTheArena) {
  const RecDataset dataset = make_dataset(prefix_titles(), {});
  const ItemTokenSequences seqs = item_token_sequences(dataset, text_render());
  Model big = test::tiny_model(dataset, true, 512);
  Model small = test::copy_with_arena(big, 20);  // one segment per forward (longest: 17)
  const std::vector<Sample> prompts = prompts_for(dataset, text_render(), true);
  const std::vector<double> a = title_loglikelihoods(big, seqs, prompts);
  const std::vector<double> b = title_loglikelihoods(small, seqs, prompts);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4) << i;
}

}  // namespace
}  // namespace reclm
