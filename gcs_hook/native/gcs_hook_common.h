// Shared helpers for the gcs-hook custom ops.
//
// Header layout: TensorFlow moved TSL's cloud filesystem from `tsl/platform/cloud/` (TF 2.16-2.18
// wheels) to `xla/tsl/platform/cloud/` (TF 2.19-2.21 wheels; checked in each wheel). gcs_hook/native_build.py checks which header exists
// in the installed wheel and defines GCS_HOOK_XLA_TSL=1 or GCS_HOOK_XLA_TSL=0 accordingly.
// Either way the classes live in namespace `tsl`.
#ifndef GCS_HOOK_NATIVE_GCS_HOOK_COMMON_H_
#define GCS_HOOK_NATIVE_GCS_HOOK_COMMON_H_

#include <string>

#include "absl/status/status.h"
#include "tensorflow/core/platform/env.h"

#ifndef GCS_HOOK_XLA_TSL
#error "GCS_HOOK_XLA_TSL must be defined (0 or 1) by gcs_hook/native_build.py"
#endif

#if GCS_HOOK_XLA_TSL
#include "xla/tsl/platform/cloud/auth_provider.h"
#include "xla/tsl/platform/cloud/gcs_file_system.h"
#include "xla/tsl/platform/cloud/oauth_client.h"
#else
#include "tsl/platform/cloud/auth_provider.h"
#include "tsl/platform/cloud/gcs_file_system.h"
#include "tsl/platform/cloud/oauth_client.h"
#endif

namespace gcs_hook {

// Returns the GcsFileSystem that TensorFlow registered for the "gs" scheme (the object inside the
// RetryingGcsFileSystem wrapper). FAILED_PRECONDITION if no gs:// filesystem is registered,
// INTERNAL if the registered one is not TensorFlow's built-in GCS filesystem (e.g. a plugin).
inline absl::Status GetGcsFileSystem(tsl::GcsFileSystem** out) {
  tsl::FileSystem* fs = nullptr;
  absl::Status s = tsl::Env::Default()->GetFileSystemForFile("gs://gcs-hook/probe", &fs);
  if (!s.ok() || fs == nullptr) {
    return absl::FailedPreconditionError(
        "TensorFlow has no gs:// filesystem registered in this process: " +
        std::string(s.message()));
  }
  auto* retrying = dynamic_cast<tsl::RetryingGcsFileSystem*>(fs);
  if (retrying == nullptr) {
    return absl::InternalError(
        "The gs:// filesystem registered in this process is not TensorFlow's built-in "
        "RetryingGcsFileSystem; cannot reconfigure it.");
  }
  tsl::GcsFileSystem* gcs = retrying->underlying();
  if (gcs == nullptr) {
    return absl::InternalError("RetryingGcsFileSystem has no underlying GcsFileSystem.");
  }
  *out = gcs;
  return absl::OkStatus();
}

// The canonical upper-case name of a status code ("OK", "OUT_OF_RANGE", ...), the same spelling
// as Python's tf.errors class names map to and as docs/trace-format.md uses.
inline const char* StatusCodeName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return "OK";
    case absl::StatusCode::kCancelled: return "CANCELLED";
    case absl::StatusCode::kUnknown: return "UNKNOWN";
    case absl::StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case absl::StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case absl::StatusCode::kNotFound: return "NOT_FOUND";
    case absl::StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case absl::StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case absl::StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case absl::StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case absl::StatusCode::kAborted: return "ABORTED";
    case absl::StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case absl::StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case absl::StatusCode::kInternal: return "INTERNAL";
    case absl::StatusCode::kUnavailable: return "UNAVAILABLE";
    case absl::StatusCode::kDataLoss: return "DATA_LOSS";
    case absl::StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

}  // namespace gcs_hook

#endif  // GCS_HOOK_NATIVE_GCS_HOOK_COMMON_H_
