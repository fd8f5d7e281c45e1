//! The little the client reads of the raw bytes a server sends: whether they are plain HTTP,
//! and the TLS 1.2 CertificateRequest in the server's cleartext flight (RFC 5246 §7.4.4).
//! Pure functions over untrusted input, fuzzed by `fuzz/fuzz_targets/cert_request.rs`.

/// TLS record content type `handshake`.
const HANDSHAKE_RECORD: u8 = 22;
/// Handshake message type `certificate_request`.
const CERTIFICATE_REQUEST: u8 = 13;
/// Handshake message type `server_hello_done`: the end of a TLS 1.2 server's flight.
const SERVER_HELLO_DONE: u8 = 14;

/// A fatal `user_canceled` alert (RFC 5246 §7.2.2, description 90) in a TLS 1.2 cleartext
/// record: how `diagnose` ends, on purpose, a probe that has read what it came for. The server
/// sees the alert as such (OpenSSL's `SSL_R_TLSV1_ALERT_USER_CANCELLED`) and counts the
/// handshake as canceled, not as one it refused.
pub const USER_CANCELED_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 90];

/// A TLS 1.2 CertificateRequest, as far as the client uses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateRequest {
    /// The `certificate_authorities` list: DER-encoded X.509 names. Empty when the server
    /// named none, or when the list did not parse (the request itself still counts).
    pub ca_names: Vec<Vec<u8>>,
}

/// True when the server answered a ClientHello with what looks like HTTP (or HTML).
pub fn looks_like_http(bytes: &[u8]) -> bool {
    bytes.starts_with(b"HTTP/") || bytes.starts_with(b"<")
}

/// The CertificateRequest in a server's flight, if there was one. TLS 1.3 encrypts it, so only
/// TLS 1.2 (and older) flights show one.
pub fn certificate_request(flight: &[u8]) -> Option<CertificateRequest> {
    let handshake = handshake_bytes(flight);
    let mut messages = handshake.as_slice();
    while let Some((kind, body, rest)) = split_message(messages) {
        if kind == CERTIFICATE_REQUEST {
            return Some(CertificateRequest {
                ca_names: ca_names(body).unwrap_or_default(),
            });
        }
        messages = rest;
    }
    None
}

/// True when a server's cleartext flight has ended (its ServerHelloDone arrived whole): a
/// TLS 1.2 server then waits for the client's certificate, if it asked for one.
pub fn server_flight_done(flight: &[u8]) -> bool {
    let handshake = handshake_bytes(flight);
    let mut messages = handshake.as_slice();
    while let Some((kind, _, rest)) = split_message(messages) {
        if kind == SERVER_HELLO_DONE {
            return true;
        }
        messages = rest;
    }
    false
}

/// The bodies of the leading handshake records, joined (a message may span records). Stops at
/// the first record of another type (ChangeCipherSpec, an alert) or one not received whole.
fn handshake_bytes(flight: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = flight;
    while let [HANDSHAKE_RECORD, _, _, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let Some((body, next)) = tail.split_at_checked(len) else {
            break;
        };
        out.extend_from_slice(body);
        rest = next;
    }
    out
}

/// One handshake message: (type, body, what follows), or `None` when it is not there whole.
fn split_message(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let [kind, a, b, c, tail @ ..] = bytes else {
        return None;
    };
    let len = usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c);
    let (body, rest) = tail.split_at_checked(len)?;
    Some((*kind, body, rest))
}

/// `certificate_types<1..2^8-1>`, `supported_signature_algorithms<2..2^16-2>`,
/// `certificate_authorities<0..2^16-1>` (each a `DistinguishedName<1..2^16-1>`).
fn ca_names(body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let (_types, rest) = vector(body, 1)?;
    let (_algorithms, rest) = vector(rest, 2)?;
    let (mut list, _) = vector(rest, 2)?;
    let mut names = Vec::new();
    while !list.is_empty() {
        let (name, rest) = vector(list, 2)?;
        names.push(name.to_vec());
        list = rest;
    }
    Some(names)
}

/// A TLS vector with a `width`-byte big-endian length: (contents, what follows).
fn vector(bytes: &[u8], width: usize) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_at_checked(width)?;
    let len = len.iter().fold(0usize, |n, b| n << 8 | usize::from(*b));
    rest.split_at_checked(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handshake message of `kind` around `body`.
    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let len = u32::try_from(body.len()).expect("small").to_be_bytes();
        [&[kind], &len[1..], body].concat()
    }

    /// One record of `kind` around `body`.
    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let len = u16::try_from(body.len()).expect("small").to_be_bytes();
        [&[kind, 3, 3], &len[..], body].concat()
    }

    /// A CertificateRequest body naming `names`.
    fn request_body(names: &[&[u8]]) -> Vec<u8> {
        let list: Vec<u8> = names
            .iter()
            .flat_map(|n| [&(n.len() as u16).to_be_bytes()[..], n].concat())
            .collect();
        let types = [1u8, 64]; // rsa_sign, ecdsa_sign
        let algorithms = [0u8, 2, 4, 3]; // ecdsa_secp256r1_sha256
        [
            &[types.len() as u8][..],
            &types,
            &algorithms,
            &(list.len() as u16).to_be_bytes(),
            &list,
        ]
        .concat()
    }

    #[test]
    fn finds_the_request_and_its_ca_names_in_a_tls12_flight() {
        let hello = message(2, &[3, 3, 0, 0]);
        let request = message(13, &request_body(&[b"name-one", b"two"]));
        let done = message(14, &[]);
        let flight = record(22, &[hello, request, done].concat());
        let found = certificate_request(&flight).expect("a request");
        assert_eq!(found.ca_names, vec![b"name-one".to_vec(), b"two".to_vec()]);
        assert!(server_flight_done(&flight));
        let (part, _) = flight.split_at(flight.len() - 4);
        assert!(
            !server_flight_done(part),
            "the ServerHelloDone is not whole"
        );
    }

    #[test]
    fn a_request_split_across_records_is_joined() {
        let messages = [message(2, &[3, 3]), message(13, &request_body(&[b"ca"]))].concat();
        let (a, b) = messages.split_at(7);
        let flight = [record(22, a), record(22, b)].concat();
        let found = certificate_request(&flight).expect("a request");
        assert_eq!(found.ca_names, vec![b"ca".to_vec()]);
    }

    #[test]
    fn no_request_in_a_one_way_or_tls13_flight() {
        let one_way = record(22, &[message(2, &[3, 3]), message(14, &[])].concat());
        assert_eq!(certificate_request(&one_way), None);
        // TLS 1.3: ServerHello, ChangeCipherSpec, then encrypted records (type 23).
        let tls13 = [
            record(22, &message(2, &[3, 3])),
            record(20, &[1]),
            record(23, &message(13, &request_body(&[b"hidden"]))),
        ]
        .concat();
        assert_eq!(certificate_request(&tls13), None);
    }

    #[test]
    fn truncated_or_malformed_input_is_no_panic_and_no_invention() {
        let flight = record(22, &message(13, &request_body(&[b"ca"])));
        for cut in 0..flight.len() {
            assert_eq!(certificate_request(&flight[..cut]), None, "cut at {cut}");
        }
        // A request whose CA list overruns its body still says a certificate was requested.
        let mut body = request_body(&[b"ca"]);
        let last = body.len() - 1;
        body.truncate(last);
        let found = certificate_request(&record(22, &message(13, &body))).expect("request");
        assert!(found.ca_names.is_empty());
    }

    #[test]
    fn http_is_told_from_tls() {
        assert!(looks_like_http(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(looks_like_http(b"<html>"));
        assert!(!looks_like_http(&record(21, &[2, 40])));
    }
}
