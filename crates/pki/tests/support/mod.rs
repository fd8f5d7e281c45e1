//! How the CLI tests run the `pki` binary (the rest of the fixture is `testkit`).
// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `pki --dir DIR ARGS` with `env`, under umask 000 (keys must still come out 0600), and none
/// of the caller's `PKI_*` variables: an operator's shell never changes a test.
pub fn command(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = testkit::command("sh");
    c.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_pki"))
        .arg("--dir")
        .arg(dir)
        .args(args);
    c.envs(env.iter().copied());
    c
}

/// Runs `pki --dir DIR ARGS` with `env` (see [`command`]).
pub fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    command(dir, env, args).output().expect("run pki")
}
