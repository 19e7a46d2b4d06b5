// GcsRandomAccessOpen / GcsRandomAccessRead / GcsRandomAccessClose: positional reads on
// TensorFlow's own RandomAccessFile (Env::NewRandomAccessFile), for tests and trace replay.
//
// Python's tf.io.gfile.GFile adds a 512 KiB buffered stream; these ops bypass it so a caller sees
// exactly the (offset, n) reads the filesystem sees and exactly the status TF returned.
//
// Invariants:
// - Handles are caller-chosen strings in one process-global map (thread-safe). Opening an existing
//   handle replaces (and closes) the previous file. Unknown handles fail with NOT_FOUND.
// - GcsRandomAccessRead never fails because of the read itself: it returns the bytes TF put in the
//   result (possibly partial) plus the status code NAME ("OK", "OUT_OF_RANGE", ...) and message.
//   It fails the op only for bad arguments (negative offset/n, unknown handle).
// - All ops are stateful.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "gcs_hook_common.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"

namespace gcs_hook {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::TensorShapeUtils;
using ::tensorflow::tstring;

REGISTER_OP("GcsRandomAccessOpen")
    .Input("handle: string")
    .Input("path: string")
    .SetIsStateful()
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs);

REGISTER_OP("GcsRandomAccessRead")
    .Input("handle: string")
    .Input("offset: int64")
    .Input("n: int64")
    .Output("data: string")
    .Output("code: string")
    .Output("message: string")
    .SetIsStateful()
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->Scalar());
      c->set_output(1, c->Scalar());
      c->set_output(2, c->Scalar());
      return absl::OkStatus();
    });

REGISTER_OP("GcsRandomAccessClose")
    .Input("handle: string")
    .SetIsStateful()
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs);

class FileTable {
 public:
  static FileTable& Get() {
    static FileTable* table = new FileTable();
    return *table;
  }
  void Put(const std::string& handle, std::shared_ptr<tsl::RandomAccessFile> file) {
    std::lock_guard<std::mutex> lock(mu_);
    files_[handle] = std::move(file);
  }
  std::shared_ptr<tsl::RandomAccessFile> Find(const std::string& handle) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(handle);
    return it == files_.end() ? nullptr : it->second;
  }
  bool Erase(const std::string& handle) {
    std::lock_guard<std::mutex> lock(mu_);
    return files_.erase(handle) > 0;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<tsl::RandomAccessFile>> files_;
};

template <typename T>
absl::Status Scalar(OpKernelContext* ctx, int index, const char* name, T* out) {
  const Tensor& t = ctx->input(index);
  if (!TensorShapeUtils::IsScalar(t.shape())) {
    return absl::InvalidArgumentError(std::string(name) + " must be a scalar");
  }
  *out = t.scalar<T>()();
  return absl::OkStatus();
}

absl::Status UnknownHandle(const std::string& handle) {
  return absl::NotFoundError("No open GcsRandomAccess handle named '" + handle + "'");
}

class OpenOp : public OpKernel {
 public:
  explicit OpenOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    tstring handle, path;
    OP_REQUIRES_OK(ctx, Scalar(ctx, 0, "handle", &handle));
    OP_REQUIRES_OK(ctx, Scalar(ctx, 1, "path", &path));
    std::unique_ptr<tsl::RandomAccessFile> file;
    OP_REQUIRES_OK(ctx, tsl::Env::Default()->NewRandomAccessFile(std::string(path), &file));
    FileTable::Get().Put(std::string(handle), std::shared_ptr<tsl::RandomAccessFile>(file.release()));
  }
};

class ReadOp : public OpKernel {
 public:
  explicit ReadOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    tstring handle;
    int64_t offset = 0, n = 0;
    OP_REQUIRES_OK(ctx, Scalar(ctx, 0, "handle", &handle));
    OP_REQUIRES_OK(ctx, Scalar(ctx, 1, "offset", &offset));
    OP_REQUIRES_OK(ctx, Scalar(ctx, 2, "n", &n));
    OP_REQUIRES(ctx, offset >= 0, absl::InvalidArgumentError("offset must be >= 0"));
    OP_REQUIRES(ctx, n >= 0, absl::InvalidArgumentError("n must be >= 0"));
    std::shared_ptr<tsl::RandomAccessFile> file = FileTable::Get().Find(std::string(handle));
    OP_REQUIRES(ctx, file != nullptr, UnknownHandle(std::string(handle)));

    std::string scratch(static_cast<size_t>(n), '\0');
    absl::string_view result;
    absl::Status s = file->Read(static_cast<uint64_t>(offset), static_cast<size_t>(n), &result,
                                scratch.empty() ? nullptr : &scratch[0]);
    Tensor* data = nullptr;
    Tensor* code = nullptr;
    Tensor* message = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &data));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({}), &code));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({}), &message));
    data->scalar<tstring>()() = tstring(result.data(), result.size());
    code->scalar<tstring>()() = StatusCodeName(s.code());
    message->scalar<tstring>()() = std::string(s.message());
  }
};

class CloseOp : public OpKernel {
 public:
  explicit CloseOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    tstring handle;
    OP_REQUIRES_OK(ctx, Scalar(ctx, 0, "handle", &handle));
    OP_REQUIRES(ctx, FileTable::Get().Erase(std::string(handle)),
                UnknownHandle(std::string(handle)));
  }
};

REGISTER_KERNEL_BUILDER(Name("GcsRandomAccessOpen").Device(::tensorflow::DEVICE_CPU), OpenOp);
REGISTER_KERNEL_BUILDER(Name("GcsRandomAccessRead").Device(::tensorflow::DEVICE_CPU), ReadOp);
REGISTER_KERNEL_BUILDER(Name("GcsRandomAccessClose").Device(::tensorflow::DEVICE_CPU), CloseOp);

}  // namespace
}  // namespace gcs_hook
