// The NCCL Communicator over DEVICE buffers (DESIGN.md §6), built only when CMake found CUDA,
// NCCL >= 2.14 and MPI (library reclm_comm_nccl, definition RECLM_HAVE_NCCL=1).
//
// It rides on the host communicator of the job (make_communicator(): MPI under mpirun, the
// single process otherwise): rank, size and local rank come from it; each rank binds GPU
// `local_rank % device count`; rank 0 makes the NCCL unique id and broadcasts it over the host
// communicator; every rank then joins the NCCL communicator. The host communicator must outlive
// this one, and abort() is the host communicator's (MPI_Abort of the whole job).
//
// Every pointer given to a collective is device memory of this rank's GPU. Collectives run on
// stream(), a blocking stream (ordered after work on the legacy default stream), and return when
// they are complete. Waiting polls the stream and NCCL's asynchronous error: past
// CommOptions::timeout_s the rank prints "rank R: nccl all_reduce(sum) of N values has waited
// T s ...", aborts the NCCL communicator and ends the job through the host communicator's abort —
// a stalled or dead peer never hangs the job. Joining the communicator is bounded the same way.
//
// Errors: no usable CUDA device → UserError "rank R: no CUDA device ...". A failing CUDA or NCCL
// call → InternalError naming the call and cudaGetErrorString / ncclGetErrorString; after an NCCL
// error the communicator is aborted (it cannot be used again) and the caller should end the job
// with abort().
#pragma once

#include <cuda_runtime_api.h>

#include <memory>

#include "runtime/comm/communicator.h"

namespace reclm {

class NcclCommunicator : public Communicator {
 public:
  // The CUDA stream every collective runs on, for callers that overlap communication with
  // compute (record an event on their compute stream, cudaStreamWaitEvent(stream(), event)).
  virtual cudaStream_t stream() const = 0;
  // The CUDA device this rank bound (current on the constructing thread).
  virtual int device() const = 0;
};

// Binds this rank's GPU and joins every rank of `host` into one NCCL communicator. Collective:
// every rank of `host` calls it. `host` must outlive the result.
std::unique_ptr<NcclCommunicator> make_nccl_communicator(Communicator& host,
                                                         const CommOptions& options = {});

}  // namespace reclm
