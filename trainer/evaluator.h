// `reclm eval` and `reclm recommend`: leave-one-out ranking over all items (no negative sampling)
// with the model's scores, beside the popularity baseline (trainer/ranking_metrics.h holds the
// metric definitions, tie and NaN rules).
//
// Every mode fills a score per (user, item) and one ranking path turns scores into ranks
// (rank_all: pessimistic ties, the user's history items optionally excluded, never the target).
// Modes:
//   kItemScores       score every item token at the last history position (ID and ID+text
//                     renderings: the next entity starts with its <item> token). One forward per
//                     batch of users, then hidden [B, C] · item rows of the LM head [n_items, C]ᵀ
//                     in one GEMM. Score = logit.
//   kBeamSearch       any rendering (meant for text): beam search constrained by a trie of the
//                     items' entity token sequences (so only real items come out), positions
//                     continuing the history with RecSysLLM's dynamic intra positions (see
//                     trainer/beam_search.h). Score = sum of the entity's token log-probabilities,
//                     each a log-softmax over the full vocabulary. Items no beam finished score −∞
//                     and so, by the pessimistic tie rule, a target that was not found ranks after
//                     every found item and ties with all unfound ones: rank n_items − 1 (less the
//                     excluded history items) — a simple, never flattering bound.
//   kTitleLikelihood  every item scored by the same log-likelihood of its entity after the history
//                     (cost: one segment per item per user — small catalogs or few users).
//
// Sizing: the caller builds the model; model.acts.max_tokens must hold one history prompt
// (setup.max_seq_len tokens); a bigger arena lets one forward hold more users and beams.
// kItemScores batches up to users_per_batch users, fewer when their prompts would overflow the
// arena; the text modes pack their segments into as many forwards as they need.
//
// Several processes (evaluate with a Communicator of N > 1 ranks, e.g. under mpirun): every rank
// plans the same batches as one process would, batch b is scored by rank b mod N (round robin, so
// no rank is more than one batch behind), and the per-user ranks are summed over ranks in one
// array of [2 · users] doubles (model, popularity; zero where another rank owns the user — integer
// sums, so exact). Every rank then accumulates the same ranks in user order and returns the same
// report, bitwise equal to the one-process report (at the same thread count per process): each
// user is scored in the very batch one process would use (same forwards, same floating-point
// operations), and the metrics depend only on the multiset of ranks (RankingAccumulator). All
// ranks must call evaluate together with the same model weights, arena size, dataset and options.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/rec_dataset.h"
#include "data/rec_samples.h"
#include "runtime/comm/communicator.h"
#include "trainer/model.h"
#include "trainer/ranking_metrics.h"

namespace reclm {

enum class EvalMode { kItemScores, kBeamSearch, kTitleLikelihood };

struct InferenceSetup {  // how the model reads histories (from the training config)
  RenderOptions render;
  bool positions_2d = false;
  int32_t max_seq_len = 256;
};

struct EvalOptions {
  Split split = Split::kTest;
  EvalMode mode = EvalMode::kItemScores;
  std::vector<int> ks = {1, 5, 10, 20};
  bool exclude_history = true;  // history items cannot be recommended (the target still can)
  int64_t max_users = 0;        // 0 = every user with a target; else the first N such users
  int32_t beam_size = 20;
  int32_t users_per_batch = 64;
  // A P5 sequential template name ("seq-2"): the history is presented inside that prompt instead
  // of plain — zero-shot evaluation of templates held out of training (data.held_out_prompts).
  std::string prompt_template;
  bool progress = true;  // a progress bar (rank 0 only when several ranks evaluate)
};

struct EvalReport {
  std::string split;  // "validation" / "test"
  std::string mode;
  bool exclude_history = true;
  std::vector<int> ks;
  int64_t n_users = 0;
  RankingResult model;
  RankingResult popularity;
  double seconds = 0;

  // A header line (split, mode, users, whether history items were excluded) and rows HR@k,
  // NDCG@k (each k), MRR with columns model, popularity and model / popularity.
  std::string table() const;
  // {"split", "mode", "exclude_history", "ks", "n_users", "seconds", "model", "popularity",
  //  "ratio"}; the last three map "HR@k" / "NDCG@k" / "MRR" to numbers (ratio null where the
  //  popularity value is 0).
  nlohmann::json to_json() const;
};

// "train" / "validation" / "test" and "item_scores" / "beam_search" / "title_likelihood": the
// names the report uses.
const char* split_name(Split split);
const char* eval_mode_name(EvalMode mode);

// Where kItemScores runs the model's forward instead of the host Model: the GPU trainer's device
// (DeviceBackend::forward_hidden, with the same weights as the host model), whose activation
// arena bounds a batch's tokens. The scores' GEMM stays on the host.
struct HiddenStateSource {
  // out [rows.size(), C] ← the final norm's output at these token rows of the batch.
  std::function<void(const Batch& batch, std::span<const int32_t> rows, float* out)> forward;
  int64_t max_tokens = 0;  // tokens one forward holds
};

// Ranks the target of every user of options.split that has one (users in id order, the first
// max_users of them if set) with the model and with the popularity baseline (training
// interactions only), under the same exclusion rule. Deterministic for a given model and dataset.
// `comm` null or of size 1: this process scores every user. Otherwise a collective: the users are
// split across comm's ranks and every rank returns the identical report, equal to the
// one-process one (see the top of this file). Report.seconds is this rank's wall time.
// `hidden`: kItemScores' forwards on a device (the other modes ignore it).
EvalReport evaluate(Model& model, const RecDataset& dataset, const InferenceSetup& setup,
                    const EvalOptions& options, Communicator* comm = nullptr,
                    const HiddenStateSource* hidden = nullptr);

struct Recommendation {
  int32_t item = -1;
  float score = 0;  // logit (kItemScores) or log-probability (text modes)
};

// Top k items after `history` (item ids), best first (ties: lower item id first); history items
// are left out when exclude_history. Beam search runs with beam min(n_items, k + distinct history
// items), wide enough that k items outside the history finish; fewer than k come back only when
// the catalog (less the excluded items) is smaller than k.
std::vector<Recommendation> recommend(Model& model, const RecDataset& dataset,
                                      const InferenceSetup& setup, EvalMode mode,
                                      std::span<const int32_t> history, int k,
                                      bool exclude_history);

}  // namespace reclm
