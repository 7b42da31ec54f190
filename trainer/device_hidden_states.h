// The ranking evaluation's forward on the GPU backend: a DeviceBackend as the evaluator's
// HiddenStateSource (trainer/evaluator.h). Apart from device_backend.h, which nvcc compiles as
// C++17 into the backend, because the evaluator's header is C++20.
#pragma once

#include <cstdint>

#include "trainer/device_backend.h"
#include "trainer/evaluator.h"

namespace reclm {

// Forwards of up to max_tokens tokens (the backend's plan) on `device`, which must hold the
// evaluated weights (upload) and outlive the source.
HiddenStateSource device_hidden_states(DeviceBackend& device, int64_t max_tokens);

}  // namespace reclm
