//! Identity extraction from a client certificate (what `/whoami` shows), on arbitrary DER.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = openssl::x509::X509::from_der(data) {
        if let Some(id) = x509::identity::ClientIdentity::from_cert(&cert) {
            assert_eq!(id.sha256.len(), 64);
        }
    }
});
