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

// Whether OpenSSL reads a certificate from the PEM text, and whether `key` is its private key.
absl::Status CheckPair(const TlsPem& pem, const TlsFiles& files) {
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(
      BIO_new_mem_buf(pem.cert.data(), static_cast<int>(pem.cert.size())), &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), &X509_free);
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-cert: OpenSSL cannot read a certificate from ", files.cert_file));
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(
      BIO_new_mem_buf(pem.key.data(), static_cast<int>(pem.key.size())), &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-key: OpenSSL cannot read an unencrypted private key from ", files.key_file));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("--tls-key: ", files.key_file,
                                                   " is not the private key of ", files.cert_file));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status TlsFiles::Validate() const {
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(cert_file.empty() ? "--tls-cert: needed with --tls-key"
                                                        : "--tls-key: needed with --tls-cert");
  }
  if (!client_ca_file.empty() && cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-client-ca: needs --tls-cert and --tls-key (mutual TLS is TLS first)");
  }
  return absl::OkStatus();
}

absl::StatusOr<TlsPem> TlsFiles::Load() const {
  RETURN_IF_ERROR(Validate());
  TlsPem pem;
  if (!enabled()) return pem;
  ASSIGN_OR_RETURN(pem.cert, ReadPem(cert_file, "--tls-cert", "CERTIFICATE"));
  ASSIGN_OR_RETURN(pem.key, ReadPem(key_file, "--tls-key", "PRIVATE KEY"));
  if (!client_ca_file.empty()) {
    ASSIGN_OR_RETURN(pem.client_ca, ReadPem(client_ca_file, "--tls-client-ca", "CERTIFICATE"));
  }
  RETURN_IF_ERROR(CheckPair(pem, *this));
  return pem;
}

}  // namespace pagoda
