//! Hosts the workspace's examples (`examples/` at the root, run with `cargo run --example
//! NAME`), so that building one compiles what the examples use and nothing the end-to-end tests
//! need (the root package's dev-dependencies: a browser driver, HTTP/2, the online CA).
//! `make_pki` is in `crates/examples-pki`: only it needs the CA library (SQLite, PostgreSQL).
