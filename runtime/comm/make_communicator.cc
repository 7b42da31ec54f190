// make_communicator(): MPI under an MPI launcher, else the single process (communicator.h).
#include <cstdlib>

#include "runtime/comm/communicator.h"
#include "runtime/errors.h"

#if RECLM_HAVE_MPI
#include "runtime/comm/mpi_communicator.h"
#endif

namespace reclm {
namespace {

// The variable an MPI launcher sets in every process it starts, or nullptr when none is set:
// OpenMPI's mpirun (OMPI_COMM_WORLD_SIZE), MPICH/Hydra and SLURM's PMI-2 (PMI_SIZE), PMIx
// launchers such as `srun --mpi=pmix` or OpenMPI 5 (PMIX_RANK).
const char* launcher_variable() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (std::getenv(name) != nullptr) return name;
  }
  return nullptr;
}

}  // namespace

std::unique_ptr<Communicator> make_communicator(const CommOptions& options) {
  RECLM_USER_CHECK(options.timeout_s > 0, "runtime.comm_timeout_s must be > 0 seconds, got {}",
                   options.timeout_s);
  const char* launcher = launcher_variable();
  if (launcher == nullptr) return make_local_communicator();
#if RECLM_HAVE_MPI
  return make_mpi_communicator(options);
#else
  throw_user_error(
      "this process was started by an MPI launcher ({} is set) but this reclm was built without "
      "MPI: install an MPI (Debian: libopenmpi-dev) and rebuild with -DRECLM_MPI=ON, or run "
      "without mpirun/srun as a single process",
      launcher);
#endif
}

}  // namespace reclm
