// gRPC credentials from the TLS material of common/tls_files.h, for the internal channels
// (pagoda-router to its workers, a worker to rank 0) and the public listeners alike: plaintext
// when nothing is given, TLS when a certificate (server) or a CA (client) is, and mutual TLS when
// a server has a client CA and a client a certificate.
//
//   ASSIGN_OR_RETURN(TlsPem tls, flags.tls.Load());
//   builder.AddListeningPort(address, ServerCredentials(tls), &port);
//   grpc::ChannelArguments args;
//   auto channel = grpc::CreateCustomChannel(address, ChannelCredentials(tls, args), args);
#pragma once

#include <memory>

#include "common/tls_files.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace pagoda {

/// Insecure without `tls.cert`; else TLS with it, requiring and verifying client certificates
/// against `tls.client_ca` when that is given.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsPem& tls);

/// Insecure without `tls.ca`; else TLS verifying the server against it, presenting `tls.cert`
/// when given, and expecting `tls.server_name` in the server's certificate (set in `args`)
/// instead of the dialed host when given.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const TlsPem& tls,
                                                             grpc::ChannelArguments& args);

}  // namespace pagoda
