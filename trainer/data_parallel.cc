#include "trainer/data_parallel.h"

namespace reclm {

void sum_over_ranks(Communicator* comm, double* values, int n) {
  if (comm == nullptr || comm->size() == 1) return;
  comm->all_reduce(values, n, ReduceOp::kSum);
}

void all_reduce_gradients(Communicator* comm, Model& model) {
  if (comm == nullptr || comm->size() == 1) return;
  if (!model.layout.any_frozen()) {  // one collective over the whole buffer (padding is zero)
    comm->all_reduce(model.grad_data(), model.layout.total_floats(), ReduceOp::kSum);
    return;
  }
  for (const ParamEntry& e : model.layout.entries()) {
    if (e.frozen()) continue;
    comm->all_reduce(model.grad_data() + e.offset + e.train_begin, e.train_end - e.train_begin,
                     ReduceOp::kSum);
  }
}

}  // namespace reclm
