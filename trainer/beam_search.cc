// Constrained beam search and title log-likelihood (see beam_search.h for the scoring rule,
// positions and cost). Both reduce to token_logprobs: pack segments into forwards, read the
// final hidden state at the asked positions, and take a full-vocabulary log-softmax there.
#include "trainer/beam_search.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "runtime/errors.h"

namespace reclm {

namespace {

// Logit rows computed per GEMM: bounds the scratch at kLogitRows × V floats (GPT-2 vocabulary plus
// Beauty's items: ~16 MiB) while keeping the GEMM wide enough to run near peak.
constexpr int64_t kLogitRows = 64;

// log Σ_c exp(logits[c]) in double, max-shifted.
//   logits [V]
double log_sum_exp(const float* logits, int64_t V) {
  float max = logits[0];
  for (int64_t c = 1; c < V; ++c) max = std::max(max, logits[c]);
  double sum = 0;
  for (int64_t c = 0; c < V; ++c) sum += std::exp(static_cast<double>(logits[c]) - max);
  return max + std::log(sum);
}

void check_queries(std::span<const Sample> segments, std::span<const TokenQuery> queries,
                   int64_t vocab) {
  for (size_t q = 0; q < queries.size(); ++q) {
    const TokenQuery& t = queries[q];
    RECLM_CHECK(t.segment >= 0 && static_cast<size_t>(t.segment) < segments.size(),
                "query {} names segment {} of {}", q, t.segment, segments.size());
    RECLM_CHECK(t.position >= 0 && t.position < segments[t.segment].size(),
                "query {} reads position {} of a {}-token segment", q, t.position,
                segments[t.segment].size());
    RECLM_CHECK(t.token >= 0 && t.token < vocab, "query {} asks for token {} of {}", q, t.token,
                vocab);
    if (q > 0) {
      const TokenQuery& p = queries[q - 1];
      RECLM_CHECK(p.segment < t.segment || (p.segment == t.segment && p.position <= t.position),
                  "queries must be sorted by (segment, position)");
    }
  }
}

// Answers queries [q_begin, q_end), all inside the batch just forwarded; segment_start[s] is the
// batch offset of segment s (indexed from the batch's first segment `first_segment`).
void answer_queries(const Model& model, std::span<const TokenQuery> queries, size_t q_begin,
                    size_t q_end, size_t first_segment, std::span<const int64_t> segment_start,
                    std::vector<float>& hidden, std::vector<float>& logits,
                    std::vector<double>& out) {
  const int64_t C = model.dims.d_model, V = model.dims.vocab;
  // Distinct (segment, position) rows; queries of one row are consecutive (sorted input).
  std::vector<size_t> row_first_query;
  for (size_t q = q_begin; q < q_end; ++q) {
    if (q == q_begin || queries[q].segment != queries[q - 1].segment ||
        queries[q].position != queries[q - 1].position) {
      row_first_query.push_back(q);
    }
  }
  row_first_query.push_back(q_end);
  const int64_t n_rows = static_cast<int64_t>(row_first_query.size()) - 1;
  for (int64_t r0 = 0; r0 < n_rows; r0 += kLogitRows) {
    const int64_t rows = std::min(kLogitRows, n_rows - r0);
    for (int64_t r = 0; r < rows; ++r) {  // hidden [rows, C] ← final_normed at each row's token
      const TokenQuery& t = queries[row_first_query[r0 + r]];
      const int64_t token = segment_start[t.segment - first_segment] + t.position;
      std::copy_n(model.acts.final_normed + token * C, C, hidden.data() + r * C);
    }
    ops::linear_forward(logits.data(), hidden.data(), model.params.lm_head, rows, C, V);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = logits.data() + r * V;
      const double lse = log_sum_exp(row, V);
      for (size_t q = row_first_query[r0 + r]; q < row_first_query[r0 + r + 1]; ++q) {
        out[q] = static_cast<double>(row[queries[q].token]) - lse;
      }
    }
  }
}

}  // namespace

Sample extend_segment(const Sample& prompt, std::span<const int32_t> generated) {
  RECLM_CHECK(prompt.size() > 0 && prompt.pos_inter.size() == prompt.tokens.size(),
              "prompt of {} tokens has {} positions", prompt.size(), prompt.pos_inter.size());
  const bool two_d = !prompt.pos_intra.empty();
  Sample s = prompt;
  const int32_t last_inter = prompt.pos_inter.back();
  for (size_t k = 0; k < generated.size(); ++k) {
    s.tokens.push_back(generated[k]);
    s.targets.push_back(0);
    s.loss_weights.push_back(0.0f);
    s.pos_inter.push_back(last_inter + 1 + static_cast<int32_t>(k));
    if (two_d) s.pos_intra.push_back(1 + static_cast<int32_t>(k));
  }
  return s;
}

std::vector<double> token_logprobs(Model& model, std::span<const Sample> segments,
                                   std::span<const TokenQuery> queries) {
  const int64_t C = model.dims.d_model, V = model.dims.vocab;
  const int64_t max_tokens = model.acts.max_tokens;
  check_queries(segments, queries, V);
  std::vector<double> out(queries.size());
  std::vector<float> hidden(kLogitRows * C), logits(kLogitRows * V);
  size_t q = 0, seg = 0;
  while (q < queries.size()) {
    seg = std::max(seg, static_cast<size_t>(queries[q].segment));  // skip segments nobody asks about
    const size_t first = seg;
    Batch batch;
    std::vector<int64_t> segment_start;
    int64_t tokens = 0;
    while (seg < segments.size() && tokens + segments[seg].size() <= max_tokens) {
      segment_start.push_back(tokens);
      tokens += segments[seg].size();
      append_sample(batch, segments[seg]);
      ++seg;
    }
    RECLM_CHECK(seg > first, "a {}-token segment does not fit the {}-token arena",
                segments[first].size(), max_tokens);
    size_t q_end = q;
    while (q_end < queries.size() && static_cast<size_t>(queries[q_end].segment) < seg) ++q_end;
    forward_hidden(model, batch);
    answer_queries(model, queries, q, q_end, first, segment_start, hidden, logits, out);
    q = q_end;
  }
  for (size_t i = 0; i < out.size(); ++i) {
    RECLM_CHECK(!std::isnan(out[i]), "NaN log-probability (query {}): the model is broken", i);
  }
  return out;
}

std::vector<std::vector<ScoredItem>> constrained_beam_search(Model& model, const TitleTrie& trie,
                                                             std::span<const Sample> prompts,
                                                             int32_t beam_size) {
  RECLM_CHECK(beam_size >= 1, "beam size {} must be ≥ 1", beam_size);
  struct Beam {
    int32_t node;
    double score;
    std::vector<int32_t> tokens;  // generated so far
  };
  struct Candidate {
    int32_t beam;  // index into the prompt's live beams
    int32_t token;
    int32_t node;
    double score;
  };
  const size_t P = prompts.size();
  std::vector<std::vector<Beam>> live(P, std::vector<Beam>{Beam{TitleTrie::kRoot, 0.0, {}}});
  std::vector<std::vector<ScoredItem>> finished(P);
  std::vector<Candidate> candidates;
  for (;;) {
    // One segment per live beam, one query per allowed next token.
    std::vector<Sample> segments;
    std::vector<TokenQuery> queries;
    for (size_t p = 0; p < P; ++p) {
      for (const Beam& beam : live[p]) {
        const auto s = static_cast<int32_t>(segments.size());
        segments.push_back(extend_segment(prompts[p], beam.tokens));
        for (const int32_t token : trie.child_tokens(beam.node)) {
          queries.push_back({s, segments.back().size() - 1, token});
        }
      }
    }
    if (segments.empty()) break;
    const std::vector<double> logprobs = token_logprobs(model, segments, queries);

    size_t q = 0;
    for (size_t p = 0; p < P; ++p) {
      candidates.clear();
      for (size_t b = 0; b < live[p].size(); ++b) {
        const Beam& beam = live[p][b];
        const std::span<const int32_t> tokens = trie.child_tokens(beam.node);
        const std::span<const int32_t> nodes = trie.child_nodes(beam.node);
        for (size_t c = 0; c < tokens.size(); ++c, ++q) {
          candidates.push_back({static_cast<int32_t>(b), tokens[c], nodes[c],
                                beam.score + logprobs[q]});
        }
      }
      // Every candidate has its own node (one parent per node), so (score, node) is a total order.
      const auto better = [](const Candidate& a, const Candidate& b) {
        return a.score > b.score || (a.score == b.score && a.node < b.node);
      };
      const size_t keep = std::min(candidates.size(), static_cast<size_t>(beam_size));
      std::partial_sort(candidates.begin(), candidates.begin() + keep, candidates.end(), better);
      std::vector<Beam> next;
      for (size_t k = 0; k < keep; ++k) {
        const Candidate& c = candidates[k];
        for (const int32_t item : trie.items_ending_at(c.node)) finished[p].push_back({item, c.score});
        if (!trie.has_children(c.node)) continue;
        Beam beam{c.node, c.score, live[p][c.beam].tokens};
        beam.tokens.push_back(c.token);
        next.push_back(std::move(beam));
      }
      live[p] = std::move(next);
    }
  }
  for (std::vector<ScoredItem>& items : finished) {
    std::sort(items.begin(), items.end(), [](const ScoredItem& a, const ScoredItem& b) {
      return a.logprob > b.logprob || (a.logprob == b.logprob && a.item < b.item);
    });
  }
  return finished;
}

std::vector<double> title_loglikelihoods(Model& model, const ItemTokenSequences& items,
                                         std::span<const Sample> prompts) {
  const int64_t n_items = items.size();
  std::vector<double> out(prompts.size() * n_items, 0.0);
  // Segments are built and answered a few arenas' worth at a time, so memory stays bounded for
  // any catalog size while every forward is still packed full.
  const int64_t flush_tokens = 4 * model.acts.max_tokens;
  std::vector<Sample> segments;
  std::vector<TokenQuery> queries;
  std::vector<int64_t> query_owner;  // index into `out`
  int64_t pending = 0;
  const auto flush = [&] {
    const std::vector<double> logprobs = token_logprobs(model, segments, queries);
    for (size_t i = 0; i < logprobs.size(); ++i) out[query_owner[i]] += logprobs[i];  // title order
    segments.clear();
    queries.clear();
    query_owner.clear();
    pending = 0;
  };
  for (size_t p = 0; p < prompts.size(); ++p) {
    for (int32_t item = 0; item < n_items; ++item) {
      const std::span<const int32_t> seq = items.of(item);
      const auto s = static_cast<int32_t>(segments.size());
      // The last token is only predicted, never read: the segment stops before it.
      segments.push_back(extend_segment(prompts[p], seq.first(seq.size() - 1)));
      for (size_t k = 0; k < seq.size(); ++k) {
        queries.push_back({s, prompts[p].size() - 1 + static_cast<int32_t>(k), seq[k]});
        query_owner.push_back(static_cast<int64_t>(p) * n_items + item);
      }
      pending += segments.back().size();
      if (pending >= flush_tokens) flush();
    }
  }
  if (!segments.empty()) flush();
  return out;
}

}  // namespace reclm
