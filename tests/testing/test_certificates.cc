#include "tests/testing/test_certificates.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "common/check.h"

namespace pagoda {
namespace {

using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using Certificate = std::unique_ptr<X509, decltype(&X509_free)>;
using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;

Key NewKey() { return Key(EVP_EC_gen("P-256"), &EVP_PKEY_free); }

// An unsigned certificate for `key` named `common_name`, valid for a day from now.
Certificate NewCertificate(const std::string& common_name, EVP_PKEY* key, int64_t serial) {
  Certificate cert(X509_new(), &X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set_int64(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  return cert;
}

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
  PAGODA_CHECK(extension != nullptr) << "bad extension " << value;
  X509_add_ext(cert, extension, -1);
  X509_EXTENSION_free(extension);
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string CertificatePem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_X509(bio.get(), cert);
  return BioText(bio.get());
}

std::string KeyPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return BioText(bio.get());
}

}  // namespace

TestCa::TestCa(const std::string& common_name) {
  const Key key = NewKey();
  Certificate cert = NewCertificate(common_name, key.get(), 1);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  PAGODA_CHECK(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
  ca_ = {.cert = CertificatePem(cert.get()), .key = KeyPem(key.get())};
}

TestCertificate TestCa::Issue(const std::string& common_name,
                              const std::string& subject_alt_name) const {
  Bio ca_cert_bio(BIO_new_mem_buf(ca_.cert.data(), static_cast<int>(ca_.cert.size())), &BIO_free);
  const Certificate ca_cert(PEM_read_bio_X509(ca_cert_bio.get(), nullptr, nullptr, nullptr),
                            &X509_free);
  Bio ca_key_bio(BIO_new_mem_buf(ca_.key.data(), static_cast<int>(ca_.key.size())), &BIO_free);
  const Key ca_key(PEM_read_bio_PrivateKey(ca_key_bio.get(), nullptr, nullptr, nullptr),
                   &EVP_PKEY_free);
  const Key key = NewKey();
  Certificate cert = NewCertificate(common_name, key.get(), next_serial_++);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  AddExtension(cert.get(), ca_cert.get(), NID_basic_constraints, "CA:FALSE");
  AddExtension(cert.get(), ca_cert.get(), NID_subject_alt_name, subject_alt_name.c_str());
  AddExtension(cert.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  AddExtension(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid");
  PAGODA_CHECK(X509_sign(cert.get(), ca_key.get(), EVP_sha256()) > 0);
  return {.cert = CertificatePem(cert.get()), .key = KeyPem(key.get())};
}

}  // namespace pagoda
