// Data parallelism for the train loop (DESIGN.md §6): every rank holds the whole model, computes
// gradients on its own micro-batches, and the gradient sums are all-reduced before the (then
// identical) optimizer step on every rank. Global batch = micro_batch × grad_accum × ranks; the
// data sources hand rank r its share (data/rec_source.h, data/text_lm_source.h).
//
// All functions accept comm == nullptr (one process) and then do no communication at all.
#pragma once

#include <cstdint>

#include "runtime/comm/communicator.h"
#include "trainer/model.h"

namespace reclm {

// In place: values[n] ← their sum over ranks (loss sums, loss weights, token counts).
void sum_over_ranks(Communicator* comm, double* values, int n);

// In place: the gradient buffer ← its sum over ranks. Only the ranges the optimizer updates are
// reduced (under LoRA the frozen base is skipped; under vocabulary parallelism each rank's item
// rows, whose gradient is complete already); the result is identical on every rank.
void all_reduce_gradients(Communicator* comm, Model& model);
// The same over a gradient buffer in `layout` that `comm` can read (the CUDA backend's, on the
// device). vocab_parallel: the layout holds vocabulary-parallel pieces (ModelDims::vocab_parallel).
void all_reduce_gradient_buffer(Communicator& comm, const ParamLayout& layout, bool vocab_parallel, float* grads);

// L2 norm of the job's gradient once all_reduce_gradients is done: AdamW::grad_norm, except under
// vocabulary parallelism, where each rank's item rows are its own and their squares are summed
// over the ranks (the same value on every rank).
double job_grad_norm(Communicator* comm, const Model& model);

// Dropout stream of micro-batch `micro` of `step` on `rank`: the global micro-batch index, so
// every rank and step draws its own masks; with one rank it is step·grad_accum + micro.
inline uint64_t dropout_stream(int64_t step, int micro, int grad_accum, int rank, int world) {
  return (static_cast<uint64_t>(step) * grad_accum + micro) * world + rank;
}

}  // namespace reclm
