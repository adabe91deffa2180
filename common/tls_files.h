// TLS material given as files on the command line (--tls-cert, --tls-key, --tls-client-ca): which
// files, checked up front, and their PEM text for gRPC's credentials. A server with a client CA
// requires every client to present a certificate signed by it (mutual TLS).
//
//   TlsFiles files{.cert_file = "server.pem", .key_file = "server.key", .client_ca_file =
//   "ca.pem"}; ASSIGN_OR_RETURN(TlsPem pem, files.Load());  // InvalidArgument naming the flag and
//   the file
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace pagoda {

struct TlsPem {
  std::string cert;       // the certificate chain, leaf first
  std::string key;        // its private key
  std::string client_ca;  // empty: clients are not asked for certificates
};

struct TlsFiles {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;

  bool enabled() const { return !cert_file.empty(); }
  /// OK when all are empty (plaintext) or cert and key are given (client CA optional); otherwise
  /// InvalidArgument naming the missing flag.
  absl::Status Validate() const;
  /// Validate(), then the files' text: NotFound for a missing file, InvalidArgument for one that
  /// holds no PEM block of the expected kind, or for a key that is not the certificate's.
  absl::StatusOr<TlsPem> Load() const;
};

}  // namespace pagoda
