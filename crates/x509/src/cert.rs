//! Facts read off a certificate or a CRL, and the text forms they travel in: PEM files,
//! base64 lines, hex serials and key identifiers, openssl's one-line names.

use std::path::Path;

use openssl::x509::{X509Crl, X509NameRef, X509Ref, X509};

use crate::error::{CryptoContext, Error, Result};
use crate::files;

/// Reads a PEM certificate, naming the file in any error.
pub fn load_cert(what: &'static str, path: &Path) -> Result<X509> {
    let pem = files::read(what, path)?;
    X509::from_pem(&pem).map_err(|e| Error::Malformed {
        what,
        path: path.to_owned(),
        detail: format!("not a PEM certificate ({e})"),
    })
}

/// Reads every PEM certificate of a file (a chain, or a bundle of CAs), refusing a file that
/// holds none; errors name the file.
pub fn load_certs(what: &'static str, path: &Path) -> Result<Vec<X509>> {
    let pem = files::read(what, path)?;
    X509::stack_from_pem(&pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::Malformed {
            what,
            path: path.to_owned(),
            detail: "no PEM certificate in it".into(),
        })
}

/// Upper-case hex serial number of a certificate.
pub fn serial_hex(cert: &X509Ref) -> Result<String> {
    let bn = cert.serial_number().to_bn().step("x509 -serial")?;
    Ok(bn.to_hex_str().step("x509 -serial")?.to_string())
}

/// The key identifier that names a CA in the records: its subjectKeyIdentifier in upper-case
/// hex (the authorityKeyIdentifier of what it signs), or the SHA-1 of its public key when it
/// carries none (RFC 5280's method 1, as OpenSSL computes the SKI).
pub fn key_id(cert: &X509Ref) -> Result<String> {
    let bytes = match cert.subject_key_id() {
        Some(ski) => ski.as_slice().to_vec(),
        None => {
            let public = cert.public_key().step("x509 -pubkey")?;
            let der = public.public_key_to_der().step("x509 -pubkey")?;
            openssl::sha::sha1(&der).to_vec()
        }
    };
    Ok(bytes.iter().map(|b| format!("{b:02X}")).collect())
}

/// The first commonName of a name, if it has one.
pub fn common_name(name: &X509NameRef) -> Option<String> {
    name.entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
        .map(|s| s.to_string())
}

/// openssl's one-line subject form, `/O=https Project/CN=localhost`.
pub fn one_line(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e
                .data()
                .to_string()
                .map(|s| s.to_string())
                .unwrap_or_default();
            format!("/{key}={value}")
        })
        .collect()
}

/// The cRLNumber of a CRL, when it has one that fits in 64 bits.
pub fn crl_number(crl: &X509Crl) -> Option<u64> {
    let (_, n) = crl
        .extension::<openssl::x509::extension::CrlNumber>()
        .ok()??;
    n.to_bn().ok()?.to_dec_str().ok()?.parse().ok()
}

/// `der` as base64 in lines of 64 characters, each ended by `eol` (`"\n"` in PEM files,
/// `"\r\n"` in EST bodies, as `openssl base64` writes and reads them).
pub fn base64_lines(der: &[u8], eol: &str) -> String {
    let text = openssl::base64::encode_block(der);
    let mut out = String::with_capacity(text.len() + (text.len() / 64 + 1) * eol.len());
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push_str(eol);
    }
    out
}

/// DER as PEM: base64 in lines of 64 between the BEGIN and END lines of `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}-----END {label}-----\n",
        base64_lines(der, "\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_is_what_openssl_reads_back() {
        let der: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let text = pem("X509 CRL", &der);
        assert!(text
            .lines()
            .all(|l| l.len() <= 64 || l.starts_with("-----")));
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(openssl::base64::decode_block(&body).expect("base64"), der);
        assert!(text.starts_with("-----BEGIN X509 CRL-----\n"));
        assert!(text.ends_with("\n-----END X509 CRL-----\n"));
        assert!(base64_lines(b"abc", "\r\n").ends_with("\r\n"));
    }
}
