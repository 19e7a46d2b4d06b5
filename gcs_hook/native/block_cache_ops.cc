// GcsConfigureBlockCache / GcsBlockCacheParams: reconfigure and read back the block cache of
// TensorFlow's built-in gs:// filesystem at run time (TF reads its GCS_READ_CACHE_* environment
// variables only once, when the filesystem is constructed at `import tensorflow`).
//
// Invariants:
// - All values are BYTES (block size, max bytes) and SECONDS (staleness), as in r1.12's kernel.
// - If all three values equal the current cache's, nothing happens (cached blocks are kept) and
//   "Skipping resetting the GCS block cache." is logged; otherwise ResetFileBlockCache builds a
//   brand-new, empty cache.
// - Both ops are stateful: an output-less stateless op is never executed eagerly.
#include <cstdint>

#include "gcs_hook_common.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/logging.h"

namespace gcs_hook {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;

REGISTER_OP("GcsConfigureBlockCache")
    .Input("max_cache_size: uint64")
    .Input("block_size: uint64")
    .Input("max_staleness: uint64")
    .SetIsStateful()
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc(R"doc(
Re-configures the block cache of TensorFlow's GCS filesystem (bytes, bytes, seconds).
Skips (and logs) when all three values equal the current configuration.
)doc");

REGISTER_OP("GcsBlockCacheParams")
    .Output("params: int64")
    .SetIsStateful()
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->Vector(3));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Returns the current GCS block cache parameters as [block_size, max_bytes, max_staleness].
)doc");

absl::Status ScalarUint64(OpKernelContext* ctx, int index, const char* name, uint64_t* out) {
  const Tensor& t = ctx->input(index);
  if (!::tensorflow::TensorShapeUtils::IsScalar(t.shape())) {
    return absl::InvalidArgumentError(std::string(name) + " must be a scalar");
  }
  *out = t.scalar<uint64_t>()();
  return absl::OkStatus();
}

class GcsConfigureBlockCacheOp : public OpKernel {
 public:
  explicit GcsConfigureBlockCacheOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    uint64_t max_cache_size = 0, block_size = 0, max_staleness = 0;
    OP_REQUIRES_OK(ctx, ScalarUint64(ctx, 0, "max_cache_size", &max_cache_size));
    OP_REQUIRES_OK(ctx, ScalarUint64(ctx, 1, "block_size", &block_size));
    OP_REQUIRES_OK(ctx, ScalarUint64(ctx, 2, "max_staleness", &max_staleness));
    tsl::GcsFileSystem* gcs = nullptr;
    OP_REQUIRES_OK(ctx, GetGcsFileSystem(&gcs));
    if (gcs->block_size() == block_size && gcs->max_bytes() == max_cache_size &&
        gcs->max_staleness() == max_staleness) {
      LOG(INFO) << "Skipping resetting the GCS block cache.";
      return;
    }
    gcs->ResetFileBlockCache(block_size, max_cache_size, max_staleness);
    LOG(INFO) << "GCS block cache reset: block_size=" << block_size
              << " max_bytes=" << max_cache_size << " max_staleness=" << max_staleness;
  }
};

class GcsBlockCacheParamsOp : public OpKernel {
 public:
  explicit GcsBlockCacheParamsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    tsl::GcsFileSystem* gcs = nullptr;
    OP_REQUIRES_OK(ctx, GetGcsFileSystem(&gcs));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ::tensorflow::TensorShape({3}), &out));
    auto v = out->vec<int64_t>();
    v(0) = static_cast<int64_t>(gcs->block_size());
    v(1) = static_cast<int64_t>(gcs->max_bytes());
    v(2) = static_cast<int64_t>(gcs->max_staleness());
  }
};

REGISTER_KERNEL_BUILDER(Name("GcsConfigureBlockCache").Device(::tensorflow::DEVICE_CPU),
                        GcsConfigureBlockCacheOp);
REGISTER_KERNEL_BUILDER(Name("GcsBlockCacheParams").Device(::tensorflow::DEVICE_CPU),
                        GcsBlockCacheParamsOp);

}  // namespace
}  // namespace gcs_hook
