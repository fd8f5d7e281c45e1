//! `pki inspect` on arbitrary PEM/DER bytes: never panics, always a summary or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // No p12 password: each PBKDF2 run would cost milliseconds and starve the fuzzer.
    if let Ok(summary) = x509::inspect::inspect(data, None) {
        let _ = summary.to_json();
        let _ = summary.to_string();
    }
});
