// TLS material given as files on the command line, checked up front, and their PEM text for
// gRPC's credentials. One struct serves both ends of a connection:
// - a server (--tls-cert, --tls-key, --tls-client-ca): serves TLS with the certificate; with a
//   client CA it requires every client to present a certificate signed by it (mutual TLS);
// - a client (--tls-ca, and --tls-cert/--tls-key to present): dials with TLS, verifying the
//   server's certificate with the CA (and the name --tls-server-name instead of the dialed
//   host, when given).
// `flag_prefix` is how the flags are spelled in errors: pagoda-router's channels to its workers
// take --worker-tls-ca, --worker-tls-cert, ...
//
//   TlsFiles files{.cert_file = "server.pem", .key_file = "server.key", .client_ca_file =
//   "ca.pem"}; ASSIGN_OR_RETURN(TlsPem pem, files.Load());  // InvalidArgument naming the flag and
//   the file
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace pagoda {

struct TlsPem {
  std::string cert;         // the certificate chain, leaf first; empty: none
  std::string key;          // its private key
  std::string client_ca;    // server: empty: clients are not asked for certificates
  std::string ca;           // client: empty: dial in plaintext
  std::string server_name;  // client: the name the server's certificate must hold; empty: host

  bool client_enabled() const { return !ca.empty(); }
};

struct TlsFiles {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
  std::string ca_file;
  std::string server_name;
  std::string flag_prefix = "--tls-";

  /// A certificate is given: a server serves TLS (a client presents it).
  bool enabled() const { return !cert_file.empty(); }
  /// A CA is given: a client dials with TLS.
  bool client_enabled() const { return !ca_file.empty(); }
  /// OK when all are empty (plaintext) or cert and key are given (client CA optional); otherwise
  /// InvalidArgument naming the missing flag.
  absl::Status Validate() const;
  /// For a process that dials with these files: Validate(), and a certificate or a server name
  /// needs the CA that verifies the server (a client certificate alone would be sent in clear).
  absl::Status ValidateClient() const;
  /// For a process that serves and dials its peers with the same files (pagoda-worker's rank
  /// 0 and the others share one configuration, so one dials with TLS exactly when the other
  /// serves it): ValidateClient(), and the CA needs the certificate.
  absl::Status ValidatePeer() const;
  /// Validate(), then the files' text: NotFound for a missing file, InvalidArgument for one that
  /// holds no PEM block of the expected kind, or for a key that is not the certificate's.
  absl::StatusOr<TlsPem> Load() const;
};

}  // namespace pagoda
