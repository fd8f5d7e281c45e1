//! The htpasswd-style users file parser on arbitrary text: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // Parsing only: verifying would run bcrypt/argon2 at attacker-chosen cost.
        let _ = common::Credentials::parse(text, std::path::Path::new("fuzz"));
    }
});
