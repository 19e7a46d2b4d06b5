// GcsConfigureCredentials: installs OAuth credentials (authorized_user or service_account JSON)
// as the auth provider of TensorFlow's built-in gs:// filesystem, like r1.12's
// contrib/cloud GcsConfigureCredentials kernel.
//
// Invariants:
// - The JSON is parsed with the jsoncpp that TensorFlow itself exports (same library and ABI
//   TF's OAuthClient expects); the JSON text and its fields never appear in logs or error messages.
// - `refresh_token` present -> refresh-token flow against https://www.googleapis.com/oauth2/v3/token;
//   otherwise `private_key` -> service-account JWT flow against .../oauth2/v4/token with the
//   cloud-platform scope. Neither -> INVALID_ARGUMENT.
// - A token is fetched once before the provider is installed: bad JSON, missing fields or a failed
//   token fetch fail the op and leave the previously installed provider in place.
// - The provider reuses its token while now + 60 s < expiry, then fetches a new one (no fallback
//   to anonymous access and no GCE metadata lookup).
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "gcs_hook_common.h"
#include "json/json.h"
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

constexpr char kOAuthV3Url[] = "https://www.googleapis.com/oauth2/v3/token";
constexpr char kOAuthV4Url[] = "https://www.googleapis.com/oauth2/v4/token";
constexpr char kOAuthScope[] = "https://www.googleapis.com/auth/cloud-platform";
constexpr uint64_t kExpirationMarginSec = 60;

REGISTER_OP("GcsConfigureCredentials")
    .Input("json: string")
    .SetIsStateful()
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc(R"doc(
Installs OAuth credentials (authorized_user or service_account JSON) for TensorFlow's GCS
filesystem. The JSON is never logged.
)doc");

// An AuthProvider holding one credentials JSON; fetches and refreshes bearer tokens via TF's
// OAuthClient. Thread-safe.
class JsonCredentialsAuthProvider : public tsl::AuthProvider {
 public:
  explicit JsonCredentialsAuthProvider(Json::Value json)
      : json_(std::move(json)),
        client_(new tsl::OAuthClient()),
        env_(tsl::Env::Default()),
        use_refresh_token_(json_.isMember("refresh_token")) {}

  absl::Status GetToken(std::string* token) override {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t now = env_->NowSeconds();
    if (!token_.empty() && now + kExpirationMarginSec < expiration_sec_) {
      *token = token_;
      return absl::OkStatus();
    }
    std::string fresh;
    uint64_t expiration_sec = 0;
    absl::Status s;
    if (use_refresh_token_) {
      s = client_->GetTokenFromRefreshTokenJson(json_, kOAuthV3Url, &fresh, &expiration_sec);
    } else {
      s = client_->GetTokenFromServiceAccountJson(json_, kOAuthV4Url, kOAuthScope, &fresh,
                                                  &expiration_sec);
    }
    if (!s.ok()) return s;
    if (fresh.empty()) {
      return absl::InvalidArgumentError("The OAuth server returned an empty token.");
    }
    token_ = fresh;
    expiration_sec_ = expiration_sec;
    *token = token_;
    return absl::OkStatus();
  }

  const char* kind() const { return use_refresh_token_ ? "authorized_user" : "service_account"; }

 private:
  const Json::Value json_;
  std::unique_ptr<tsl::OAuthClient> client_;
  tsl::Env* env_;
  const bool use_refresh_token_;
  std::mutex mu_;
  std::string token_;
  uint64_t expiration_sec_ = 0;
};

class GcsConfigureCredentialsOp : public OpKernel {
 public:
  explicit GcsConfigureCredentialsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& input = ctx->input(0);
    OP_REQUIRES(ctx, ::tensorflow::TensorShapeUtils::IsScalar(input.shape()),
                absl::InvalidArgumentError("json must be a scalar string"));
    const ::tensorflow::tstring& text = input.scalar<::tensorflow::tstring>()();

    Json::Value json;
    {
      Json::CharReaderBuilder builder;
      std::unique_ptr<Json::CharReader> reader(builder.newCharReader());
      std::string ignored_errors;  // may quote the input: never surfaced
      const bool parsed =
          reader->parse(text.data(), text.data() + text.size(), &json, &ignored_errors);
      OP_REQUIRES(ctx, parsed && json.isObject(),
                  absl::InvalidArgumentError(
                      "Could not parse the credentials: expected a JSON object."));
    }
    OP_REQUIRES(ctx, json.isMember("refresh_token") || json.isMember("private_key"),
                absl::InvalidArgumentError(
                    "The credentials JSON has neither 'refresh_token' (authorized_user) nor "
                    "'private_key' (service_account)."));

    tsl::GcsFileSystem* gcs = nullptr;
    OP_REQUIRES_OK(ctx, GetGcsFileSystem(&gcs));

    auto provider = std::make_unique<JsonCredentialsAuthProvider>(std::move(json));
    std::string token;
    absl::Status s = provider->GetToken(&token);
    OP_REQUIRES(ctx, s.ok(),
                absl::Status(s.code(), "Could not retrieve a token with the given " +
                                           std::string(provider->kind()) +
                                           " credentials: " + std::string(s.message())));
    const char* kind = provider->kind();
    gcs->SetAuthProvider(std::move(provider));
    LOG(INFO) << "GCS credentials configured (" << kind << ").";
  }
};

REGISTER_KERNEL_BUILDER(Name("GcsConfigureCredentials").Device(::tensorflow::DEVICE_CPU),
                        GcsConfigureCredentialsOp);

}  // namespace
}  // namespace gcs_hook
