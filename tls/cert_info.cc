#include "tls/cert_info.h"

#include "tls/context.h"

#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/digest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/obj.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <cstdio>
#include <vector>
#include <ctime>
#include <string>

namespace dbward::tls {
namespace {

std::string NameToString(X509_NAME* name) {
  if (name == nullptr) return "";
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "";
  const uint8_t* data;
  size_t len;
  BIO_mem_contents(bio.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::string TimeToIso(const ASN1_TIME* t) {
  if (t == nullptr) return "";
  // Normalise UTCTime / GeneralizedTime to YYYYMMDDHHMMSSZ, then reformat.
  bssl::UniquePtr<ASN1_GENERALIZEDTIME> g(ASN1_TIME_to_generalizedtime(t, nullptr));
  if (!g) return "";
  std::string s(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g.get())),
                static_cast<size_t>(ASN1_STRING_length(g.get())));
  if (s.size() < 15) return s;
  return s.substr(0, 4) + "-" + s.substr(4, 2) + "-" + s.substr(6, 2) + "T" + s.substr(8, 2) + ":" +
         s.substr(10, 2) + ":" + s.substr(12, 2) + "Z";
}

std::string IpToString(const ASN1_OCTET_STRING* ip) {
  const uint8_t* d = ASN1_STRING_get0_data(ip);
  int len = ASN1_STRING_length(ip);
  char buf[INET6_ADDRSTRLEN];
  if (len == 4 && inet_ntop(AF_INET, d, buf, sizeof buf) != nullptr) return buf;
  if (len == 16 && inet_ntop(AF_INET6, d, buf, sizeof buf) != nullptr) return buf;
  return "?";
}

}  // namespace

int64_t NotAfterUnix(X509* cert) { return cert ? TimeUnix(X509_get0_notAfter(cert)) : 0; }

int64_t TimeUnix(const ASN1_TIME* t) {
  std::string iso = TimeToIso(t);
  struct tm tm = {};
  if (iso.size() != 20 || strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm) == nullptr) return 0;
  return timegm(&tm);
}

CertSummary Summarize(X509* cert) {
  CertSummary s;
  if (cert == nullptr) return s;
  s.present = true;
  s.subject = NameToString(X509_get_subject_name(cert));
  s.issuer = NameToString(X509_get_issuer_name(cert));
  s.not_before = TimeToIso(X509_get0_notBefore(cert));
  s.not_after = TimeToIso(X509_get0_notAfter(cert));
  s.not_after_unix = NotAfterUnix(cert);

  bssl::UniquePtr<GENERAL_NAMES> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (names) {
    for (size_t i = 0; i < sk_GENERAL_NAME_num(names.get()); i++) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
      if (gn->type == GEN_DNS) {
        const ASN1_STRING* str = gn->d.dNSName;
        s.sans.push_back("DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(str)),
                                              static_cast<size_t>(ASN1_STRING_length(str))));
      } else if (gn->type == GEN_IPADD) {
        s.sans.push_back("IP:" + IpToString(gn->d.iPAddress));
      }
    }
  }

  bssl::UniquePtr<EXTENDED_KEY_USAGE> eku(static_cast<EXTENDED_KEY_USAGE*>(
      X509_get_ext_d2i(cert, NID_ext_key_usage, nullptr, nullptr)));
  if (eku) {
    for (size_t i = 0; i < sk_ASN1_OBJECT_num(eku.get()); i++) {
      const ASN1_OBJECT* obj = sk_ASN1_OBJECT_value(eku.get(), i);
      int nid = OBJ_obj2nid(obj);
      if (nid == NID_server_auth) {
        s.eku.push_back("serverAuth");
      } else if (nid == NID_client_auth) {
        s.eku.push_back("clientAuth");
      } else {
        char buf[80];
        OBJ_obj2txt(buf, sizeof buf, obj, 1);
        s.eku.push_back(buf);
      }
    }
  }

  bssl::UniquePtr<EVP_PKEY> owned_key(X509_get_pubkey(cert));
  EVP_PKEY* pkey = owned_key.get();
  if (pkey != nullptr) {
    int id = EVP_PKEY_id(pkey);
    if (id == EVP_PKEY_RSA) {
      s.key = "RSA " + std::to_string(EVP_PKEY_bits(pkey));
    } else if (id == EVP_PKEY_EC) {
      const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(pkey);
      int nid = EC_GROUP_get_curve_name(EC_KEY_get0_group(ec));
      const char* sn = OBJ_nid2sn(nid);
      s.key = std::string("EC ") + (sn ? sn : "?");
    } else if (id == EVP_PKEY_ED25519) {
      s.key = "Ed25519";
    } else {
      s.key = "type " + std::to_string(id);
    }
  }

  uint8_t* der = nullptr;
  int der_len = i2d_X509(cert, &der);
  if (der_len > 0) {
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    EVP_Digest(der, static_cast<size_t>(der_len), md, &md_len, EVP_sha256(), nullptr);
    static const char kHex[] = "0123456789abcdef";
    for (unsigned i = 0; i < md_len; i++) {
      s.sha256.push_back(kHex[md[i] >> 4]);
      s.sha256.push_back(kHex[md[i] & 15]);
    }
    OPENSSL_free(der);
  }
  s.spki = SpkiSha256(cert);
  return s;
}

std::string CertSummary::OneLine() const {
  if (!present) return "no certificate";
  std::string out = "subject=\"" + subject + "\" issuer=\"" + issuer + "\" SANs=[";
  for (size_t i = 0; i < sans.size(); i++) {
    out += (i ? ", " : "") + sans[i];
  }
  out += "] valid " + not_before + " to " + not_after;
  return out;
}

bool IsCertificateFailure(FailureCause cause) {
  switch (cause) {
    case FailureCause::kUntrusted:
    case FailureCause::kNameMismatch:
    case FailureCause::kExpired:
    case FailureCause::kNotYetValid:
    case FailureCause::kBadPurpose:
    case FailureCause::kVerifyOther:
    case FailureCause::kRevoked:
    case FailureCause::kCrl:
    case FailureCause::kPinMismatch:
      return true;
    default:
      return false;
  }
}

bool IsIpLiteral(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool CertificateMatchesName(X509* cert, const std::string& name) {
  if (cert == nullptr || name.empty()) return false;
  return IsIpLiteral(name) ? X509_check_ip_asc(cert, name.c_str(), 0) == 1
                           : X509_check_host(cert, name.data(), name.size(), 0, nullptr) == 1;
}

std::vector<uint8_t> ServerEndPoint(X509* cert) {
  if (cert == nullptr) return {};
  int md_nid = NID_undef;
  if (!OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, nullptr)) return {};
  const EVP_MD* md = md_nid == NID_md5 || md_nid == NID_sha1 ? EVP_sha256() : EVP_get_digestbynid(md_nid);
  if (md == nullptr) return {};
  uint8_t out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (!X509_digest(cert, md, out, &len)) return {};
  return std::vector<uint8_t>(out, out + len);
}

FailureCause CauseFromVerifyError(long e) {
  switch (e) {
    case X509_V_OK: return FailureCause::kNone;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return FailureCause::kUntrusted;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
    case X509_V_ERR_EMAIL_MISMATCH:
      return FailureCause::kNameMismatch;
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return FailureCause::kExpired;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return FailureCause::kNotYetValid;
    case X509_V_ERR_CERT_REVOKED:
      return FailureCause::kRevoked;
    case X509_V_ERR_UNABLE_TO_GET_CRL:
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_CRL_NOT_YET_VALID:
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
    case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
    case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
    case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
    case X509_V_ERR_DIFFERENT_CRL_SCOPE:
    case X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION:
    case X509_V_ERR_CRL_PATH_VALIDATION_ERROR:
      return FailureCause::kCrl;
    case X509_V_ERR_INVALID_PURPOSE:
      return FailureCause::kBadPurpose;
    default:
      return FailureCause::kVerifyOther;
  }
}

}  // namespace dbward::tls
