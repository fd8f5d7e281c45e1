//! Every fixed limit of the server, in one place: what a client may send, how long a refused
//! connection is read, how much is queued or tracked. (What an operator sets is in the
//! `Config`.)

use std::time::Duration;

/// Largest `/login1` body read; anything longer is refused with 413. Also the most read of a
/// body the server refuses anyway (a cross-site post), before it answers.
pub const MAX_FORM_BYTES: usize = 4096;

/// Largest request head (header names and values) served; beyond it, 431. nginx allows about
/// as much (4 × 8 KiB); actix-http itself cuts heads at 128 KiB.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Pending connections the kernel queues per listener (actix-web's default).
pub const BACKLOG: u32 = 1024;

/// How long a client gets to close after the server's answer before the connection is dropped.
pub const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a refused connection keeps reading (nginx: `lingering_time` 30 s; a refused client
/// sends its last flight within milliseconds and then closes).
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// How much a refused connection reads before giving up.
pub const LINGER_BYTES: usize = 64 * 1024;

/// Most connections lingering at once; past it, refused connections close at once (a flood of
/// bad handshakes must not pin file descriptors).
pub const MAX_LINGERING: usize = 1024;

/// Logins waiting for a hashing thread before new ones get 503.
pub const HASH_QUEUE: usize = 1024;

/// Most client identities the login brakes track, and most logins the verified cache keeps;
/// past it, expired entries are dropped, then the oldest.
pub const MAX_TRACKED: usize = 100_000;
