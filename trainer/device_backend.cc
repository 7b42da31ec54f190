#include "trainer/device_backend.h"

#include "runtime/errors.h"

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

}  // namespace reclm
