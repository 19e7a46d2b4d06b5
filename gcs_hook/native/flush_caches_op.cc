// GcsFlushCaches: TensorFlow's GcsFileSystem::FlushCaches on the process's gs:// filesystem.
//
// TF 2.21's FlushCaches empties the block cache, the stat cache, the matching-paths (glob)
// cache and the bucket-location cache, under the block cache lock held shared. TensorFlow has
// no Python API for it; the model's GcsFilesystemModel.flush_caches() is checked against it.
//
// Invariants: sends no request; stateful (an output-less op must still run eagerly).
#include "gcs_hook_common.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace gcs_hook {
namespace {

REGISTER_OP("GcsFlushCaches")
    .SetIsStateful()
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc(R"doc(
Flushes every cache of TensorFlow's GCS filesystem (GcsFileSystem::FlushCaches).
)doc");

class GcsFlushCachesOp : public ::tensorflow::OpKernel {
 public:
  explicit GcsFlushCachesOp(::tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(::tensorflow::OpKernelContext* ctx) override {
    tsl::GcsFileSystem* gcs = nullptr;
    OP_REQUIRES_OK(ctx, GetGcsFileSystem(&gcs));
    gcs->FlushCaches(nullptr);
  }
};

REGISTER_KERNEL_BUILDER(Name("GcsFlushCaches").Device(::tensorflow::DEVICE_CPU), GcsFlushCachesOp);

}  // namespace
}  // namespace gcs_hook
