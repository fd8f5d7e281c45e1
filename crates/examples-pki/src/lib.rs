//! Hosts `examples/make_pki.rs` (`cargo run --example make_pki`): the one example that uses the
//! CA library, whose records bring SQLite and PostgreSQL; the others live in `crates/examples`
//! and build without them.
