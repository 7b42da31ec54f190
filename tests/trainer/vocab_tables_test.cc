// The vocabulary-parallel layout (param_layout.h pieces) and the moves between it and the
// unsharded layout (trainer/vocab_tables.h), in one process. The sharded training itself runs
// under mpirun: tests/trainer/mpi_vocab_parallel_test.cc and tests/mpi/vocab_parallel_mpi.sh.
#include "trainer/vocab_tables.h"

#include <gtest/gtest.h>

#include <vector>

#include "runtime/comm/communicator.h"
#include "trainer/model.h"
#include "trainer/tiny_dims.h"

namespace reclm {
namespace {

constexpr int64_t kItemBegin = 9, kItemEnd = 30;  // tiny vocabulary of 37

ModelDims sharded(bool tied, int rank, int world) {
  ModelDims d = test::tiny_model_dims({.tied = tied});
  d.vocab_shard = make_vocab_shard(d.vocab, kItemBegin, kItemEnd, rank, world);
  return d;
}

// Each rank's pieces of a freshly initialised model are exactly its rows of the unsharded init,
// and every other tensor is identical; the pieces of all ranks tile the item block.
TEST(VocabTables, ShardedInitIsTheUnshardedInitSliced) {
  for (bool tied : {true, false}) {
    const ModelDims whole_dims = test::tiny_model_dims({.tied = tied});
    Model whole(whole_dims, 4);
    init_weights(whole, 17, 0.5f);
    int64_t items_held = 0;
    for (int rank = 0; rank < 4; ++rank) {
      const ModelDims dims = sharded(tied, rank, 4);
      Model model(dims, 4);
      init_weights(model, 17, 0.5f);
      std::vector<float> expected(model.layout.total_floats(), 0.0f);
      slice_unsharded(dims, whole.param_data(), expected.data());
      for (const ParamEntry& e : model.layout.entries()) {
        for (int64_t j = 0; j < e.numel; ++j) {
          ASSERT_EQ(model.param_data()[e.offset + j], expected[e.offset + j])
              << e.name << " [" << j << "] rank " << rank << (tied ? " tied" : " untied");
        }
      }
      const ParamEntry& items = model.layout.find(std::string("model.embed_tokens.weight") + kItemsPiece);
      EXPECT_TRUE(items.sharded_rows);
      EXPECT_EQ(items.shape[0], dims.vocab_shard.n_own());
      EXPECT_EQ(model.layout.find(std::string("model.embed_tokens.weight") + kReplicatedPiece).shape[0],
                dims.vocab - (kItemEnd - kItemBegin));
      EXPECT_EQ(model.layout.find_or_null("lm_head.weight@items") != nullptr, !tied);
      items_held += dims.vocab_shard.n_own();
    }
    EXPECT_EQ(items_held, kItemEnd - kItemBegin);
  }
}

// One rank holding every item: gathering its pieces gives back the unsharded buffer exactly.
TEST(VocabTables, GatherUndoesSlice) {
  for (bool tied : {true, false}) {
    const ModelDims dims = sharded(tied, 0, 1);
    const ParamLayout whole_layout(unsharded_dims(dims)), layout(dims);
    std::vector<float> whole(whole_layout.total_floats(), 0.0f);
    for (const ParamEntry& e : whole_layout.entries()) {
      for (int64_t j = 0; j < e.numel; ++j) whole[e.offset + j] = 0.25f * (e.offset + j) + 1.0f;
    }
    std::vector<float> pieces(layout.total_floats(), -1.0f), back(whole.size(), 0.0f);
    slice_unsharded(dims, whole.data(), pieces.data());
    auto comm = make_local_communicator();
    gather_unsharded(*comm, dims, pieces.data(), back.data());
    EXPECT_EQ(back, whole);
  }
}

}  // namespace
}  // namespace reclm
