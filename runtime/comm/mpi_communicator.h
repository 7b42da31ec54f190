// Internal to runtime/comm: the MPI Communicator, built only when CMake found MPI
// (RECLM_HAVE_MPI=1). Callers use make_communicator() (communicator.h), which picks it under an
// MPI launcher.
#pragma once

#include <memory>

#include "runtime/comm/communicator.h"

namespace reclm {

// Initialises MPI (MPI_THREAD_SERIALIZED: any one thread at a time may call it) unless something
// else already did, and returns the communicator of every rank of MPI_COMM_WORLD. Once per
// process: MPI cannot be initialised again after the returned object finalizes it.
std::unique_ptr<Communicator> make_mpi_communicator(const CommOptions& options);

}  // namespace reclm
