//! The TLS 1.2 CertificateRequest parser (what the client reads of a server's cleartext
//! flight), on arbitrary server bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

// The parser is plain std code: included by path, so the fuzz build need not compile the
// client's web stack (actix, awc) under the sanitizer.
#[path = "../../crates/client/src/wire.rs"]
#[allow(dead_code)]
mod wire;

fuzz_target!(|data: &[u8]| {
    if let Some(request) = wire::certificate_request(data) {
        // Each CA name is a distinct slice of the input: together they cannot outgrow it.
        let total: usize = request.ca_names.iter().map(Vec::len).sum();
        assert!(total <= data.len());
    }
    let _ = wire::looks_like_http(data);
});
