#include "common/tls_files.h"

#include <cstdlib>
#include <string>

#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_certificates.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/pagoda_tls_files_test_" + name;
}

// ca.pem; leaf.pem with leaf.key; other.key (not leaf's); garbage.pem (a CERTIFICATE label
// around bytes that are none).
class TlsFilesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const TestCa ca("ca");
    const TestCertificate leaf = ca.Issue("leaf", "DNS:leaf");
    ASSERT_TRUE(WriteStringToFile(TempPath("ca.pem"), ca.cert()).ok());
    ASSERT_TRUE(WriteStringToFile(TempPath("leaf.pem"), leaf.cert).ok());
    ASSERT_TRUE(WriteStringToFile(TempPath("leaf.key"), leaf.key).ok());
    ASSERT_TRUE(WriteStringToFile(TempPath("other.key"), ca.Issue("other", "DNS:other").key).ok());
    ASSERT_TRUE(WriteStringToFile(TempPath("garbage.pem"),
                                  "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n"
                                  "-----END CERTIFICATE-----\n")
                    .ok());
  }

  static TlsFiles WorkerChannel() {
    return {.cert_file = TempPath("leaf.pem"),
            .key_file = TempPath("leaf.key"),
            .ca_file = TempPath("ca.pem"),
            .server_name = "pagoda-worker",
            .flag_prefix = "--worker-tls-"};
  }
};

std::string Message(const absl::Status& status) { return std::string(status.message()); }

TEST_F(TlsFilesTest, NothingGivenIsPlaintext) {
  const TlsFiles files;
  EXPECT_TRUE(files.Validate().ok());
  EXPECT_TRUE(files.ValidateClient().ok());
  absl::StatusOr<TlsPem> pem = files.Load();
  ASSERT_TRUE(pem.ok()) << pem.status();
  EXPECT_FALSE(files.enabled());
  EXPECT_FALSE(pem->client_enabled());
  EXPECT_TRUE(pem->cert.empty());
}

TEST_F(TlsFilesTest, HalfAPairNamesTheMissingFlagWithThePrefix) {
  EXPECT_THAT(Message(TlsFiles{.cert_file = "a.pem"}.Validate()),
              HasSubstr("--tls-key: needed with --tls-cert"));
  EXPECT_THAT(Message(TlsFiles{.key_file = "a.key", .flag_prefix = "--worker-tls-"}.Validate()),
              HasSubstr("--worker-tls-cert: needed with --worker-tls-key"));
  EXPECT_THAT(Message(TlsFiles{.client_ca_file = "ca.pem"}.Validate()),
              HasSubstr("--tls-client-ca: needs --tls-cert"));
  EXPECT_EQ(TlsFiles{.cert_file = "a.pem"}.Load().status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TlsFilesTest, AClientCertificateOrServerNameNeedsTheServersCa) {
  TlsFiles files = WorkerChannel();
  files.ca_file.clear();
  EXPECT_TRUE(files.Validate().ok());  // a server needs no CA
  EXPECT_THAT(Message(files.ValidateClient()),
              HasSubstr("--worker-tls-ca: needed with --worker-tls-cert"));
  EXPECT_THAT(
      Message(TlsFiles{.server_name = "w", .flag_prefix = "--worker-tls-"}.ValidateClient()),
      HasSubstr("--worker-tls-ca: needed with --worker-tls-server-name"));
  EXPECT_TRUE(TlsFiles{.ca_file = "ca.pem"}.ValidateClient().ok());  // TLS without a client cert
  EXPECT_TRUE(WorkerChannel().ValidateClient().ok());
}

TEST_F(TlsFilesTest, APeerThatDialsWithTlsServesTlsToo) {
  EXPECT_THAT(Message(TlsFiles{.ca_file = "ca.pem"}.ValidatePeer()),
              HasSubstr("--tls-ca: needs --tls-cert and --tls-key"));
  EXPECT_THAT(Message(TlsFiles{.cert_file = "a.pem", .key_file = "a.key"}.ValidatePeer()),
              HasSubstr("--tls-ca: needed with --tls-cert"));
  EXPECT_TRUE(TlsFiles().ValidatePeer().ok());
  EXPECT_TRUE(WorkerChannel().ValidatePeer().ok());
}

TEST_F(TlsFilesTest, LoadsEveryFileOfAClient) {
  absl::StatusOr<TlsPem> pem = WorkerChannel().Load();
  ASSERT_TRUE(pem.ok()) << pem.status();
  EXPECT_TRUE(pem->client_enabled());
  EXPECT_EQ(pem->ca, *ReadFileToString(TempPath("ca.pem")));
  EXPECT_EQ(pem->cert, *ReadFileToString(TempPath("leaf.pem")));
  EXPECT_EQ(pem->key, *ReadFileToString(TempPath("leaf.key")));
  EXPECT_TRUE(pem->client_ca.empty());
  EXPECT_EQ(pem->server_name, "pagoda-worker");
}

TEST_F(TlsFilesTest, LoadsAServerWithAClientCa) {
  const TlsFiles files{.cert_file = TempPath("leaf.pem"),
                       .key_file = TempPath("leaf.key"),
                       .client_ca_file = TempPath("ca.pem")};
  absl::StatusOr<TlsPem> pem = files.Load();
  ASSERT_TRUE(pem.ok()) << pem.status();
  EXPECT_EQ(pem->client_ca, *ReadFileToString(TempPath("ca.pem")));
  EXPECT_FALSE(pem->client_enabled());
}

TEST_F(TlsFilesTest, AMissingFileIsNotFoundNamingTheFlagAndPath) {
  TlsFiles files = WorkerChannel();
  files.ca_file = TempPath("absent.pem");
  const absl::Status status = files.Load().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(status), HasSubstr("--worker-tls-ca"));
  EXPECT_THAT(Message(status), HasSubstr("absent.pem"));
}

TEST_F(TlsFilesTest, AKeyThatIsNotTheCertificatesIsRefused) {
  TlsFiles files = WorkerChannel();
  files.key_file = TempPath("other.key");
  const absl::Status status = files.Load().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("--worker-tls-key: "));
  EXPECT_THAT(Message(status), HasSubstr("is not the private key of"));
}

TEST_F(TlsFilesTest, AFileOfTheWrongKindIsRefused) {
  TlsFiles files = WorkerChannel();
  files.ca_file = TempPath("leaf.key");
  EXPECT_THAT(Message(files.Load().status()),
              HasSubstr("--worker-tls-ca: " + TempPath("leaf.key") + " holds no PEM CERTIFICATE"));
  files = WorkerChannel();
  files.key_file = TempPath("leaf.pem");
  EXPECT_THAT(Message(files.Load().status()), HasSubstr("--worker-tls-key: "));
  files = WorkerChannel();
  files.cert_file = TempPath("garbage.pem");
  EXPECT_THAT(Message(files.Load().status()),
              HasSubstr("--worker-tls-cert: OpenSSL cannot read a certificate"));
}

}  // namespace
}  // namespace pagoda
