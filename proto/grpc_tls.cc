#include "proto/grpc_tls.h"

namespace pagoda {

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsPem& tls) {
  if (tls.cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(
      tls.client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = tls.client_ca;
  ssl.pem_key_cert_pairs.push_back({.private_key = tls.key, .cert_chain = tls.cert});
  return grpc::SslServerCredentials(ssl);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const TlsPem& tls,
                                                             grpc::ChannelArguments& args) {
  if (!tls.client_enabled()) return grpc::InsecureChannelCredentials();
  if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  return grpc::SslCredentials(
      {.pem_root_certs = tls.ca, .pem_private_key = tls.key, .pem_cert_chain = tls.cert});
}

}  // namespace pagoda
