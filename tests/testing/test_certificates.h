// Certificates for TLS tests, made in memory with OpenSSL: a CA, and leaf certificates it signs
// for a subjectAltName with both the server and the client usage (what Pagoda's internal
// processes share), all as PEM text.
//
//   const TestCa ca("ca");
//   const TestCertificate server = ca.Issue("server", "IP:127.0.0.1,DNS:pagoda-worker");
//   TlsPem tls{.cert = server.cert, .key = server.key, .client_ca = ca.cert()};
#pragma once

#include <cstdint>
#include <string>

namespace pagoda {

struct TestCertificate {
  std::string cert;  // PEM
  std::string key;   // PEM, unencrypted
};

class TestCa {
 public:
  /// A self-signed CA certificate (ECDSA P-256, valid for a day) named `common_name`.
  explicit TestCa(const std::string& common_name);

  const std::string& cert() const { return ca_.cert; }

  /// A certificate this CA signs, for `subject_alt_name` in OpenSSL's syntax
  /// ("IP:127.0.0.1,DNS:localhost"), with extendedKeyUsage serverAuth and clientAuth.
  TestCertificate Issue(const std::string& common_name, const std::string& subject_alt_name) const;

 private:
  TestCertificate ca_;
  mutable int64_t next_serial_ = 2;
};

}  // namespace pagoda
