// The router's channels to its workers over TLS (CreateWorkerChannel with --worker-tls-*
// material) against a gRPC server with a worker's mutual-TLS credentials, and the errors a failed
// handshake reads as (WorkerCallError). The server registers the Worker service without
// implementing it: a call answered UNIMPLEMENTED went through the handshake, one refused by TLS
// is UNAVAILABLE.
#include "router/remote_executor.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/tls_files.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "pagoda/internal/worker.grpc.pb.h"
#include "proto/grpc_tls.h"
#include "tests/testing/test_certificates.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class WorkerChannelTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ca_ = new TestCa("ca");
    other_ca_ = new TestCa("other-ca");
    worker_ = new TestCertificate(ca_->Issue("worker", "IP:127.0.0.1,DNS:pagoda-worker"));
    router_ = new TestCertificate(ca_->Issue("router", "DNS:router"));
    stranger_ = new TestCertificate(other_ca_->Issue("stranger", "IP:127.0.0.1"));
  }

  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(
        "127.0.0.1:0",
        ServerCredentials({.cert = worker_->cert, .key = worker_->key, .client_ca = ca_->cert()}),
        &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }

  void TearDown() override { server_->Shutdown(); }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  // A Worker/Health call over CreateWorkerChannel(address(), tls).
  grpc::Status Health(const TlsPem& tls) const {
    auto stub = internal::Worker::NewStub(CreateWorkerChannel(address(), tls));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    internal::HealthResponse response;
    return stub->Health(&context, internal::HealthRequest(), &response);
  }

  // The router's material: the CA it verifies workers with and its client certificate.
  static TlsPem Router() { return {.cert = router_->cert, .key = router_->key, .ca = ca_->cert()}; }

  static TestCa* ca_;
  static TestCa* other_ca_;
  static TestCertificate* worker_;
  static TestCertificate* router_;
  static TestCertificate* stranger_;

  internal::Worker::Service service_;  // every method UNIMPLEMENTED
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TestCa* WorkerChannelTlsTest::ca_ = nullptr;
TestCa* WorkerChannelTlsTest::other_ca_ = nullptr;
TestCertificate* WorkerChannelTlsTest::worker_ = nullptr;
TestCertificate* WorkerChannelTlsTest::router_ = nullptr;
TestCertificate* WorkerChannelTlsTest::stranger_ = nullptr;

TEST_F(WorkerChannelTlsTest, MutualTlsWithCertificatesFromTheCaConnects) {
  EXPECT_EQ(Health(Router()).error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(WorkerChannelTlsTest, AServerNameReplacesTheDialedHost) {
  TlsPem tls = Router();
  tls.server_name = "pagoda-worker";
  EXPECT_EQ(Health(tls).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  tls.server_name = "another-name";
  const grpc::Status status = Health(tls);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(WorkerCallError(status, tls), StartsWith("TLS handshake failed ("));
}

TEST_F(WorkerChannelTlsTest, ARouterThatTrustsAnotherCaRefusesTheWorker) {
  TlsPem tls = Router();
  tls.ca = other_ca_->cert();
  const grpc::Status status = Health(tls);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(WorkerCallError(status, tls),
              StartsWith("TLS handshake failed (the workers' certificates must chain to "
                         "--worker-tls-ca"));
}

TEST_F(WorkerChannelTlsTest, TheWorkerRefusesNoCertificateOrOneFromAnotherCa) {
  for (const TlsPem& tls :
       {TlsPem{.ca = ca_->cert()},
        TlsPem{.cert = stranger_->cert, .key = stranger_->key, .ca = ca_->cert()}}) {
    const grpc::Status status = Health(tls);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << tls.cert;
    // "Socket closed", or the worker's TLS alert when it arrives before the close.
    EXPECT_THAT(WorkerCallError(status, tls),
                ::testing::AnyOf(StartsWith("the worker closed the connection during setup (its "
                                            "TLS handshake refused the router's client "
                                            "certificate"),
                                 StartsWith("TLS handshake failed (")));
  }
}

TEST_F(WorkerChannelTlsTest, APlaintextRouterIsToldToDialWithTls) {
  const grpc::Status status = Health(TlsPem{});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(WorkerCallError(status, TlsPem{}), HasSubstr("give the router --worker-tls-ca"));
}

TEST(WorkerCallError, LeavesOtherErrorsAsGrpcSaysThem) {
  const grpc::Status refused(grpc::StatusCode::UNAVAILABLE,
                             "failed to connect to all addresses; last error: UNAVAILABLE: "
                             "ipv4:127.0.0.1:1: Connection refused");
  EXPECT_EQ(WorkerCallError(refused, TlsPem{.ca = "x"}), refused.error_message());
  // A worker's own error that mentions a certificate is not a handshake of this channel.
  const grpc::Status invalid(grpc::StatusCode::INVALID_ARGUMENT, "certificate of the model");
  EXPECT_EQ(WorkerCallError(invalid, TlsPem{}), "certificate of the model");
}

}  // namespace
}  // namespace pagoda
