#include <fmt/format.h>

#include <exception>

#include "runtime/comm/communicator.h"
#include "runtime/errors.h"

namespace reclm {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kAvg: return "avg";
    case ReduceOp::kMax: return "max";
  }
  return "?";
}

void run_or_abort_job(Communicator& comm, const std::function<void()>& body) {
  try {
    body();
  } catch (const UserError& e) {
    if (comm.size() > 1) comm.abort(kExitUserError, fmt::format("error: {}", e.what()));
    throw;
  } catch (const std::exception& e) {
    if (comm.size() > 1) comm.abort(kExitInternal, fmt::format("error: {}", e.what()));
    throw;
  }
}

}  // namespace reclm
