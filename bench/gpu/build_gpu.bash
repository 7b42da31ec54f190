# Sourced by bench/gpu/run.sh and train.sh: builds reclm with CUDA into $build (unless
# RECLM_PREBUILT is set) — with cmake, or with scripts/offline/build.sh when the Debian packages
# are missing and .debs/ holds them — then loads the offline build's library paths (env.sh).
# Exits the calling script when the build fails.
if [ -z "${RECLM_PREBUILT:-}" ]; then
  if ! dpkg-query -W -f='${Status}' libprotobuf-dev 2>/dev/null | grep -q "install ok installed" &&
     ls .debs/*.deb > /dev/null 2>&1; then
    scripts/offline/build.sh .debs "$build" || exit 1
  else
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRECLM_CUDA=ON > /dev/null &&
      cmake --build "$build" -j "${JOBS:-$(nproc)}" || exit 1
  fi
fi
# shellcheck disable=SC1091
[ -f "$build/env.sh" ] && source "$build/env.sh"  # libraries of an offline build
