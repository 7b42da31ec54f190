#include "trainer/data_parallel.h"

#include <cmath>

#include "kernels/ops.h"
#include "trainer/optimizer.h"

namespace reclm {

void sum_over_ranks(Communicator* comm, double* values, int n) {
  if (comm == nullptr || comm->size() == 1) return;
  comm->all_reduce(values, n, ReduceOp::kSum);
}

void all_reduce_gradients(Communicator* comm, Model& model) {
  if (comm == nullptr || comm->size() == 1) return;
  all_reduce_gradient_buffer(*comm, model.layout, model.dims.vocab_parallel(), model.grad_data());
}

void all_reduce_gradient_buffer(Communicator& comm, const ParamLayout& layout, bool vocab_parallel, float* grads) {
  if (!layout.any_frozen() && !vocab_parallel) {  // one collective (padding is 0)
    comm.all_reduce(grads, layout.total_floats(), ReduceOp::kSum);
    return;
  }
  for (const ParamEntry& e : layout.entries()) {
    if (e.frozen() || e.sharded_rows) continue;  // sharded rows: complete already
    comm.all_reduce(grads + e.offset + e.train_begin, e.train_end - e.train_begin, ReduceOp::kSum);
  }
}

double job_grad_norm(Communicator* comm, const Model& model) {
  if (!model.dims.vocab_parallel()) return AdamW::grad_norm(model);
  double squares[2] = {0.0, 0.0};  // replicated entries (the same on every rank), sharded rows
  for (const ParamEntry& e : model.layout.entries()) {
    squares[e.sharded_rows] += ops::sum_of_squares(model.grad_data() + e.offset, e.numel);
  }
  if (comm != nullptr) comm->all_reduce(&squares[1], 1, ReduceOp::kSum);
  return std::sqrt(squares[0] + squares[1]);
}

}  // namespace reclm
