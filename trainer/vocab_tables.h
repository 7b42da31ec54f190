// Between the layouts with and without vocabulary parallelism (trainer/vocab_parallel.h): the
// final weights, checkpoints and evaluation use the unsharded layout (whole [V, C] tables under
// their Hugging Face names), while training keeps each table as "<name>@replicated" plus this
// rank's "<name>@items". Works on any buffer in those layouts: parameters, or AdamW moments
// (which share the parameter layout).
#pragma once

#include "runtime/comm/communicator.h"
#include "trainer/param_layout.h"

namespace reclm {

// ModelDims of the same model without vocabulary parallelism (the unsharded layout).
ModelDims unsharded_dims(const ModelDims& dims);

// Assembles the unsharded buffer on rank 0: `dense` [ParamLayout(unsharded_dims(dims))
// .total_floats()] ← every tensor of `sharded` (this rank's buffer in ParamLayout(dims)), the
// item rows of each table from the rank that holds them. `dense` is written on rank 0 only (may
// be null elsewhere). Collective: every rank calls it. Cost: one broadcast per rank and table.
void gather_unsharded(Communicator& comm, const ModelDims& dims, const float* sharded, float* dense);

// The reverse, locally: this rank's sharded buffer ← its rows of the unsharded one.
void slice_unsharded(const ModelDims& dims, const float* dense, float* sharded);

}  // namespace reclm
