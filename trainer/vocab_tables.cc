#include "trainer/vocab_tables.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "runtime/errors.h"

namespace reclm {

namespace {

bool is_vocab_table(const std::string& name) {
  return name == "model.embed_tokens.weight" || name == "lm_head.weight";
}

// Copies `count` floats from `src` to `dst` (null `dst`: nothing to do on this rank).
void copy(float* dst, const float* src, int64_t count) {
  if (dst != nullptr && count > 0) {
    std::memcpy(dst, src, static_cast<size_t>(count) * sizeof(float));
  }
}

}  // namespace

ModelDims unsharded_dims(const ModelDims& dims) {
  ModelDims d = dims;
  d.vocab_shard = VocabShard{};
  return d;
}

void gather_unsharded(Communicator& comm, const ModelDims& dims, const float* sharded, float* dense) {
  RECLM_CHECK(dims.vocab_parallel(), "gather_unsharded of a model without vocabulary parallelism");
  const ParamLayout from(dims), to(unsharded_dims(dims));
  const VocabShard& mine = dims.vocab_shard;
  const int64_t C = dims.d_model;
  float* out = comm.rank() == 0 ? dense : nullptr;
  for (const ParamEntry& e : to.entries()) {
    float* table = out == nullptr ? nullptr : out + e.offset;
    if (!is_vocab_table(e.name)) {
      copy(table, sharded + from.find(e.name).offset, e.numel);
      continue;
    }
    const float* replicated = sharded + from.find(e.name + kReplicatedPiece).offset;
    for (int64_t id = 0; id < dims.vocab && table != nullptr; ++id) {
      if (!mine.is_item(id)) copy(table + id * C, replicated + mine.replicated_row(id) * C, C);
    }
    const float* own = sharded + from.find(e.name + kItemsPiece).offset;
    std::vector<float> rows;
    for (int r = 0; r < comm.size(); ++r) {  // rank r's item rows, to rank 0
      const VocabShard theirs = make_vocab_shard(dims.vocab, mine.item_begin, mine.item_end, r, comm.size());
      const int64_t n = theirs.n_own() * C;
      rows.assign(static_cast<size_t>(n), 0.0f);
      if (r == comm.rank()) copy(rows.data(), own, n);
      if (n > 0) comm.broadcast(rows.data(), n * static_cast<int64_t>(sizeof(float)), r);
      if (table != nullptr) copy(table + theirs.own_begin * C, rows.data(), n);
    }
  }
}

void slice_unsharded(const ModelDims& dims, const float* dense, float* sharded) {
  RECLM_CHECK(dims.vocab_parallel(), "slice_unsharded of a model without vocabulary parallelism");
  const ParamLayout from(unsharded_dims(dims)), to(dims);
  const VocabShard& mine = dims.vocab_shard;
  const int64_t C = dims.d_model;
  for (const ParamEntry& e : from.entries()) {
    const float* table = dense + e.offset;
    if (!is_vocab_table(e.name)) {
      copy(sharded + to.find(e.name).offset, table, e.numel);
      continue;
    }
    float* replicated = sharded + to.find(e.name + kReplicatedPiece).offset;
    float* own = sharded + to.find(e.name + kItemsPiece).offset;
    for (int64_t id = 0; id < dims.vocab; ++id) {
      if (!mine.is_item(id)) copy(replicated + mine.replicated_row(id) * C, table + id * C, C);
    }
    copy(own, table + mine.own_begin * C, mine.n_own() * C);
  }
}

}  // namespace reclm
