#!/usr/bin/env bash
# Starts an MPI job of reclm ranks (OpenMPI's mpirun) with the flags this project always needs:
#
#   scripts/mpirun.sh -np 3 build/bin/reclm train --config run.textproto
#   scripts/mpirun.sh -np 16 --hostfile hosts --map-by ppr:8:node build/bin/reclm train ...
#
# Arguments go to mpirun unchanged; this adds
#   --allow-run-as-root  when run as root (OpenMPI refuses root otherwise: containers, CI);
#   --oversubscribe      when -np exceeds this machine's cores and no --host/--hostfile names
#                        other nodes (OpenMPI refuses more ranks than slots otherwise);
#   -x VAR               for every NCCL_*, OMP_* and RECLM_* variable set here, so ranks on other
#                        nodes see them too.
# RECLM_MPIRUN=/path/to/mpirun picks another mpirun. Tests add `--mca btl self,tcp`
# (tests/comm/run_mpi.sh).
set -euo pipefail

flags=()
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)

ranks=1
multi_node=0
args=("$@")
# mpirun's own options come before the program; scanning stops at the program (the first word
# that is a command), so the program's arguments (`bash -c ...`) are never read as mpirun's.
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    -np | -n | --np) ranks="${args[i + 1]:-1}"; i=$((i + 1)) ;;
    -H | --host | -host | --hostfile | -hostfile | --machinefile | -machinefile) multi_node=1 ;;
    -*) ;;
    *) command -v -- "${args[i]}" > /dev/null 2>&1 && break ;;
  esac
done
if [ "$multi_node" -eq 0 ] && [ -z "${SLURM_JOB_ID:-}" ] && [ "$ranks" -gt "$(nproc)" ]; then
  flags+=(--oversubscribe)
fi

while IFS= read -r name; do
  flags+=(-x "$name")
done < <(compgen -e | grep -E '^(NCCL_|OMP_|RECLM_)' || true)

exec "${RECLM_MPIRUN:-mpirun}" "${flags[@]}" "$@"
