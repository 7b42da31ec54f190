#include "trainer/device_backend.h"

#include "runtime/errors.h"
#include "trainer/device_hidden_states.h"

namespace reclm {

namespace {
DeviceBackendFactory& linked_factory() {
  static DeviceBackendFactory factory = nullptr;
  return factory;
}
}  // namespace

bool register_device_backend(DeviceBackendFactory factory) {
  linked_factory() = factory;
  return true;
}

std::unique_ptr<DeviceBackend> make_device_backend(const Model& model, const AdamW& optimizer,
                                                   const DeviceOptions& options) {
  RECLM_USER_CHECK(linked_factory() != nullptr,
                   "field runtime.device: \"cuda\" but this reclm was built without CUDA (no nvcc was found "
                   "when it was configured); install the CUDA toolkit and rebuild (scripts/build.sh), or use "
                   "device \"cpu\"");
  return linked_factory()(model, optimizer, options);
}

HiddenStateSource device_hidden_states(DeviceBackend& device, int64_t max_tokens) {
  HiddenStateSource source;
  source.forward = [&device](const Batch& batch, std::span<const int32_t> rows, float* out) {
    device.forward_hidden(batch, rows.data(), static_cast<int64_t>(rows.size()), out);
  };
  source.max_tokens = max_tokens;
  return source;
}

}  // namespace reclm
