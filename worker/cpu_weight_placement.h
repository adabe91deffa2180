// Where the weights the CPU GEMMs stream at every step live: ModelRunner::Create hands a loaded
// model's weights here once, before the first step. Every LinearWeight part and the LM head (the
// embedding, when tied) is moved into one buffer of transparent huge pages (kernels/
// weight_buffer.h), views of a GGUF file's mapping included, and weights with a faster packed
// layout for this CPU (kernels::PackedGemmWeightBytes: Q8_0, Q4_0 and Q4_1 on AVX-512) get it
// beside their stored form, in the same buffer: LinearWeight::packed, ModelWeights::packed_lm_head.
// The stored forms stay for everything else that reads them (the embedding rows, TensorToFloats,
// the GEMM's other paths).
//
// Memory: the moved weights take anonymous memory instead of the file's page cache (a second
// process serving the same file no longer shares it), and a packed weight adds its own size
// (Q8_0, Q4_x: the same bytes again), counted in ModelWeights::packed_bytes and so in num_bytes()
// (the worker's pagoda_worker:model_weight_bytes). A packed weight's stored form that is a view
// of a GGUF file's mapping is not read again by the GEMMs: its pages stay in the page cache, clean
// and reclaimable. PAGODA_CPU_HUGE_PAGES=0 leaves the weights where the loader put them;
// PAGODA_CPU_PACK_WEIGHTS=0 packs nothing (kernels/cpu/internal/cpu_isa.h).
//
//   RETURN_IF_ERROR(PlaceWeightsForCpu(weights));
#pragma once

#include "absl/status/status.h"
#include "worker/model_weights.h"

namespace pagoda {

/// Moves and packs `weights` (host tensors only; device tensors are left alone) as above. The
/// values the GEMMs compute do not change. ResourceExhausted when the buffer cannot be mapped.
absl::Status PlaceWeightsForCpu(ModelWeights& weights);

}  // namespace pagoda
