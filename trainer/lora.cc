// See lora.h. Base entries precede the adapters in a LoRA layout and have the same names and
// shapes as in the plain layout, so merging is a copy by name plus one GEMM per adapter.
#include "trainer/lora.h"

#include <cstring>

#include "kernels/ops.h"
#include "runtime/errors.h"

namespace reclm {

ModelDims without_lora(const ModelDims& dims) {
  ModelDims d = dims;
  d.lora_rank = 0;
  d.lora_targets = 0;
  return d;
}

std::vector<float> merge_lora(const Model& lora_model) {
  const ModelDims& d = lora_model.dims;
  RECLM_CHECK(d.has_lora(), "merge_lora: the model has no LoRA adapters");
  const ParamLayout base(without_lora(d));
  std::vector<float> merged(base.total_floats(), 0.0f);
  for (const ParamEntry& e : base.entries()) {
    const ParamEntry& src = lora_model.layout.find(e.name);
    RECLM_CHECK(src.shape == e.shape, "merge_lora: {} changes shape", e.name);
    std::memcpy(merged.data() + e.offset, lora_model.param_data() + src.offset,
                e.numel * sizeof(float));
  }
  const int64_t r = d.lora_rank;
  std::vector<float> scaled_a_t;  // scale·Aᵀ [in, r]
  for (int64_t l = 0; l < d.n_layers; ++l) {
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const auto target = static_cast<LoraTarget>(t);
      if (!d.lora_targets_has(target)) continue;
      const std::string module = lora_module_path(l, target);
      const float* a = lora_model.param_data() + lora_model.layout.find(module + ".lora_A.weight").offset;
      const float* b = lora_model.param_data() + lora_model.layout.find(module + ".lora_B.weight").offset;
      const int64_t in = d.proj_in(target), out = d.proj_out(target);
      scaled_a_t.resize(in * r);
      for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < in; ++j) scaled_a_t[j * r + i] = d.lora_scale() * a[i * in + j];
      // W[out, in] += B[out, r] · (scale·Aᵀ)ᵀ: linear_forward with B as the "tokens".
      float* w = merged.data() + base.find(module + ".weight").offset;
      ops::linear_forward(w, b, scaled_a_t.data(), out, r, in, /*accumulate_out=*/true);
    }
  }
  return merged;
}

std::vector<ParamEntry> lora_adapter_entries(const Model& model) {
  std::vector<ParamEntry> adapters;
  for (const ParamEntry& e : model.layout.entries()) {
    if (e.kind == ParamKind::kLora) adapters.push_back(e);
  }
  return adapters;
}

}  // namespace reclm
