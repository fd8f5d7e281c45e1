//! Why a certificate does not verify, as a typed fact ([`Problem`]) with one plain-language
//! explanation each: the table that `pki verify`, the server's logs and the client's diagnosis
//! share.
//!
//! OpenSSL reports a failed verification as an `X509_V_ERR_*` code (an
//! [`X509VerifyResult`]); several codes mean the same thing to a person (2, 20 and 21 all say
//! "not issued by a CA we trust"), so they map to one variant.

use openssl::x509::X509VerifyResult;
use openssl_sys as ffi;

// In <openssl/x509_vfy.h> since OpenSSL 3.0, not (yet) named by openssl-sys 0.9.
const X509_V_ERR_MISSING_AUTHORITY_KEY_IDENTIFIER: i32 = 85;
const X509_V_ERR_CA_BCONS_NOT_CRITICAL: i32 = 89;
const X509_V_ERR_CA_CERT_MISSING_KEY_USAGE: i32 = 92;

/// One reason a certificate does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Problem {
    /// Its issuer is not a trusted CA (`UNABLE_TO_GET_ISSUER_CERT[_LOCALLY]`,
    /// `UNABLE_TO_VERIFY_LEAF_SIGNATURE`).
    UnknownIssuer,
    /// Self-signed, not issued by the CA (`DEPTH_ZERO_SELF_SIGNED_CERT`).
    SelfSigned,
    /// The chain ends in a self-signed certificate that is not trusted
    /// (`SELF_SIGNED_CERT_IN_CHAIN`).
    SelfSignedInChain,
    /// The signature does not verify (`UNABLE_TO_DECRYPT_CERT_SIGNATURE`,
    /// `CERT_SIGNATURE_FAILURE`).
    BadSignature,
    /// notBefore is in the future (`CERT_NOT_YET_VALID`).
    NotYetValid,
    /// notAfter is in the past (`CERT_HAS_EXPIRED`).
    Expired,
    /// The CA revoked it (`CERT_REVOKED`).
    Revoked,
    /// No CRL for the CA was found (`UNABLE_TO_GET_CRL`).
    NoCrl,
    /// The CRL's signature does not verify (`CRL_SIGNATURE_FAILURE`).
    CrlBadSignature,
    /// The CRL's lastUpdate is in the future (`CRL_NOT_YET_VALID`).
    CrlNotYetValid,
    /// The CRL is past its nextUpdate (`CRL_HAS_EXPIRED`).
    CrlExpired,
    /// The chain is longer than allowed (`CERT_CHAIN_TOO_LONG`, `PATH_LENGTH_EXCEEDED`).
    ChainTooLong,
    /// A certificate used as issuer is not a valid CA certificate (`INVALID_CA`).
    InvalidCa,
    /// Its extendedKeyUsage does not allow this use (`INVALID_PURPOSE`).
    WrongPurpose,
    /// The issuer's keyUsage lacks keyCertSign (`KEYUSAGE_NO_CERTSIGN`).
    IssuerCannotSign,
    /// The issuer's keyUsage lacks cRLSign (`KEYUSAGE_NO_CRL_SIGN`).
    IssuerCannotSignCrls,
    /// The issuer is not a CA (`INVALID_NON_CA`).
    IssuerNotCa,
    /// The host name is not in its subjectAltName (`HOSTNAME_MISMATCH`).
    HostMismatch,
    /// The e-mail address is not in its subjectAltName (`EMAIL_MISMATCH`).
    EmailMismatch,
    /// The IP address is not in its subjectAltName (`IP_ADDRESS_MISMATCH`).
    IpMismatch,
    /// Its key is too small (`EE_KEY_TOO_SMALL`).
    KeyTooSmall,
    /// The CA's key is too small (`CA_KEY_TOO_SMALL`).
    CaKeyTooSmall,
    /// The CA signed with a weak hash (`CA_MD_TOO_WEAK`).
    WeakHash,
    /// It has no authorityKeyIdentifier (`MISSING_AUTHORITY_KEY_IDENTIFIER`).
    NoAuthorityKeyId,
    /// The CA's basicConstraints is not critical (`CA_BCONS_NOT_CRITICAL`).
    CaConstraintsNotCritical,
    /// The CA certificate has no keyUsage (`CA_CERT_MISSING_KEY_USAGE`).
    CaWithoutKeyUsage,
    /// A CA certificate (CA:TRUE) used as a TLS leaf: OpenSSL accepts it, we do not.
    CaAsLeaf,
    /// Another `X509_V_ERR_*` code.
    Other(i32),
}

impl Problem {
    /// The problem OpenSSL's verify result names; `None` for `X509_V_OK`.
    pub fn of(result: X509VerifyResult) -> Option<Problem> {
        Problem::from_code(result.as_raw())
    }

    /// The problem of a raw `X509_V_ERR_*` code; `None` for 0 (`X509_V_OK`).
    pub fn from_code(code: i32) -> Option<Problem> {
        use Problem::*;
        Some(match code {
            ffi::X509_V_OK => return None,
            ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
            | ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
            | ffi::X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE => UnknownIssuer,
            ffi::X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT => SelfSigned,
            ffi::X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN => SelfSignedInChain,
            ffi::X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE
            | ffi::X509_V_ERR_CERT_SIGNATURE_FAILURE => BadSignature,
            ffi::X509_V_ERR_CERT_NOT_YET_VALID => NotYetValid,
            ffi::X509_V_ERR_CERT_HAS_EXPIRED => Expired,
            ffi::X509_V_ERR_CERT_REVOKED => Revoked,
            ffi::X509_V_ERR_UNABLE_TO_GET_CRL => NoCrl,
            ffi::X509_V_ERR_CRL_SIGNATURE_FAILURE => CrlBadSignature,
            ffi::X509_V_ERR_CRL_NOT_YET_VALID => CrlNotYetValid,
            ffi::X509_V_ERR_CRL_HAS_EXPIRED => CrlExpired,
            ffi::X509_V_ERR_CERT_CHAIN_TOO_LONG | ffi::X509_V_ERR_PATH_LENGTH_EXCEEDED => {
                ChainTooLong
            }
            // INVALID_CA is 79 since OpenSSL 3.0 and 24 before; 3.0 gives 24 to
            // NO_ISSUER_PUBLIC_KEY, which also means the issuer cannot act as a CA.
            24 | 79 => InvalidCa,
            ffi::X509_V_ERR_INVALID_PURPOSE => WrongPurpose,
            ffi::X509_V_ERR_KEYUSAGE_NO_CERTSIGN => IssuerCannotSign,
            ffi::X509_V_ERR_KEYUSAGE_NO_CRL_SIGN => IssuerCannotSignCrls,
            ffi::X509_V_ERR_INVALID_NON_CA => IssuerNotCa,
            ffi::X509_V_ERR_HOSTNAME_MISMATCH => HostMismatch,
            ffi::X509_V_ERR_EMAIL_MISMATCH => EmailMismatch,
            ffi::X509_V_ERR_IP_ADDRESS_MISMATCH => IpMismatch,
            ffi::X509_V_ERR_EE_KEY_TOO_SMALL => KeyTooSmall,
            ffi::X509_V_ERR_CA_KEY_TOO_SMALL => CaKeyTooSmall,
            ffi::X509_V_ERR_CA_MD_TOO_WEAK => WeakHash,
            X509_V_ERR_MISSING_AUTHORITY_KEY_IDENTIFIER => NoAuthorityKeyId,
            X509_V_ERR_CA_BCONS_NOT_CRITICAL => CaConstraintsNotCritical,
            X509_V_ERR_CA_CERT_MISSING_KEY_USAGE => CaWithoutKeyUsage,
            other => Other(other),
        })
    }

    /// The reason in plain words, with what to do.
    pub fn explain(self) -> &'static str {
        use Problem::*;
        match self {
            UnknownIssuer => "not issued by the trusted CA (wrong CA file, or the CA was regenerated since): use the ca.crt that signed it",
            SelfSigned => "self-signed, not issued by the CA: issue it with `pki issue`",
            SelfSignedInChain => "the chain ends in a self-signed certificate that is not the trusted CA",
            BadSignature => "the signature does not verify: the certificate was altered or signed by another key",
            NotYetValid => "not valid yet: its notBefore is in the future (check both clocks)",
            Expired => "expired: issue a new certificate",
            Revoked => "revoked by the CA",
            NoCrl => "no CRL for the CA was found: run `pki crl`",
            CrlBadSignature => "the CRL's signature does not verify: it was not made by this CA",
            CrlNotYetValid => "the CRL is not valid yet (check the clocks)",
            CrlExpired => "the CRL is out of date (past its nextUpdate): run `pki crl`",
            ChainTooLong => "the chain is longer than allowed",
            InvalidCa => "a certificate used as issuer is not a valid CA certificate",
            WrongPurpose => "not issued for this use: its extendedKeyUsage lacks serverAuth/clientAuth",
            IssuerCannotSign => "the issuer may not sign certificates (keyUsage lacks keyCertSign)",
            IssuerCannotSignCrls => "the issuer may not sign CRLs (keyUsage lacks cRLSign)",
            IssuerNotCa => "the issuer is not a CA",
            HostMismatch => "the host name is not in the certificate's subjectAltName: reissue with --san",
            EmailMismatch => "the e-mail address is not in the certificate's subjectAltName",
            IpMismatch => "the IP address is not in the certificate's subjectAltName: reissue with --san IP:...",
            KeyTooSmall => "the certificate's key is too small (OpenSSL 3 wants RSA >= 2048 bits)",
            CaKeyTooSmall => "the CA's key is too small (OpenSSL 3 wants RSA >= 2048 bits)",
            WeakHash => "the CA signed with a weak hash (SHA-1 or MD5)",
            NoAuthorityKeyId => "the certificate has no authorityKeyIdentifier (strict verifiers refuse it)",
            CaConstraintsNotCritical => "the CA's basicConstraints is not marked critical",
            CaWithoutKeyUsage => "the CA certificate has no keyUsage",
            CaAsLeaf => "the certificate is a CA certificate (CA:TRUE), not a server or client certificate: issue a leaf with `pki issue`",
            Other(_) => "the certificate does not verify",
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.explain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_that_mean_the_same_share_a_variant() {
        for code in [2, 20, 21] {
            assert_eq!(Problem::from_code(code), Some(Problem::UnknownIssuer));
        }
        assert_eq!(Problem::from_code(0), None);
        assert_eq!(Problem::of(X509VerifyResult::OK), None);
        assert_eq!(Problem::from_code(12), Some(Problem::CrlExpired));
        assert_eq!(Problem::from_code(85), Some(Problem::NoAuthorityKeyId));
        assert_eq!(Problem::from_code(4242), Some(Problem::Other(4242)));
    }

    #[test]
    fn expired_certificate_and_expired_crl_read_differently() {
        // OpenSSL sends both as the alert "certificate expired"; the words must not merge them.
        let cert = Problem::Expired.explain();
        let crl = Problem::CrlExpired.explain();
        assert!(cert.contains("issue a new certificate"), "{cert}");
        assert!(crl.contains("`pki crl`") && !crl.contains("issue"), "{crl}");
    }
}
