//! `/login1`'s form parser on arbitrary bodies: never panics, and what it returns round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((user, password)) = common::credentials::parse_login_form(data) {
        // Whatever it extracted, re-encoding and parsing again gives the same pair.
        let again = serde_urlencoded_roundtrip(&user, &password);
        assert_eq!(again, Some((user, password)));
    }
});

fn serde_urlencoded_roundtrip(user: &str, password: &str) -> Option<(String, String)> {
    let body = format!(
        "username={}&password={}",
        percent(user),
        percent(password)
    );
    common::credentials::parse_login_form(body.as_bytes())
}

fn percent(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}
