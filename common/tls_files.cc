#include "common/tls_files.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace pagoda {
namespace {

using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;
using Certificate = std::unique_ptr<X509, decltype(&X509_free)>;

// The file's text, which must hold a PEM block whose label contains `kind` ("CERTIFICATE",
// "PRIVATE KEY" also matches "EC PRIVATE KEY" and "RSA PRIVATE KEY").
absl::StatusOr<std::string> ReadPem(const std::string& path, std::string_view flag,
                                    std::string_view kind) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::Status(text.status().code(), absl::StrCat(std::string(flag), ": ",
                                                           std::string(text.status().message())));
  }
  const size_t begin = text->find("-----BEGIN ");
  const size_t label_end = begin == std::string::npos ? begin : text->find("-----", begin + 11);
  if (label_end == std::string::npos ||
      text->substr(begin, label_end - begin).find(kind) == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(flag), ": ", path, " holds no PEM ", std::string(kind)));
  }
  return text;
}

Certificate ParseCertificate(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  return Certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
}

// A certificate file that OpenSSL can read (a CA or a leaf).
absl::StatusOr<std::string> ReadCertificate(const std::string& path, const std::string& flag) {
  ASSIGN_OR_RETURN(std::string pem, ReadPem(path, flag, "CERTIFICATE"));
  if (ParseCertificate(pem) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": OpenSSL cannot read a certificate from ", path));
  }
  return pem;
}

// Whether `key` is the private key of the certificate `pem.cert`.
absl::Status CheckPair(const TlsPem& pem, const TlsFiles& files) {
  const Certificate cert = ParseCertificate(pem.cert);
  Bio key_bio(BIO_new_mem_buf(pem.key.data(), static_cast<int>(pem.key.size())), &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(files.flag_prefix, "key: OpenSSL cannot read an unencrypted private key from ",
                     files.key_file));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(files.flag_prefix, "key: ", files.key_file,
                                                   " is not the private key of ", files.cert_file));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status TlsFiles::Validate() const {
  const std::string& p = flag_prefix;
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(cert_file.empty()
                                          ? absl::StrCat(p, "cert: needed with ", p, "key")
                                          : absl::StrCat(p, "key: needed with ", p, "cert"));
  }
  if (!client_ca_file.empty() && cert_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(p, "client-ca: needs ", p, "cert and ", p, "key (mutual TLS is TLS first)"));
  }
  return absl::OkStatus();
}

absl::Status TlsFiles::ValidateClient() const {
  RETURN_IF_ERROR(Validate());
  if (ca_file.empty() && (enabled() || !server_name.empty())) {
    const std::string& p = flag_prefix;
    return absl::InvalidArgumentError(
        absl::StrCat(p, "ca: needed with ", p, enabled() ? "cert" : "server-name",
                     ": the CA that signed the certificates of the servers this process dials "
                     "(without it they are dialed in plaintext)"));
  }
  return absl::OkStatus();
}

absl::Status TlsFiles::ValidatePeer() const {
  RETURN_IF_ERROR(ValidateClient());
  if (client_enabled() && !enabled()) {
    const std::string& p = flag_prefix;
    return absl::InvalidArgumentError(absl::StrCat(
        p, "ca: needs ", p, "cert and ", p, "key (the peers serve TLS only if this process does)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TlsPem> TlsFiles::Load() const {
  RETURN_IF_ERROR(Validate());
  const std::string& p = flag_prefix;
  TlsPem pem;
  pem.server_name = server_name;
  if (!ca_file.empty()) {
    ASSIGN_OR_RETURN(pem.ca, ReadCertificate(ca_file, p + "ca"));
  }
  if (!enabled()) return pem;
  ASSIGN_OR_RETURN(pem.cert, ReadCertificate(cert_file, p + "cert"));
  ASSIGN_OR_RETURN(pem.key, ReadPem(key_file, p + "key", "PRIVATE KEY"));
  if (!client_ca_file.empty()) {
    ASSIGN_OR_RETURN(pem.client_ca, ReadCertificate(client_ca_file, p + "client-ca"));
  }
  RETURN_IF_ERROR(CheckPair(pem, *this));
  return pem;
}

}  // namespace pagoda
