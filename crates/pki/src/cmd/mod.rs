//! One module per group of subcommands; each function takes the folder and the parsed
//! arguments, calls the library and prints what a person needs.

pub(crate) mod files;
pub(crate) mod issue;
pub(crate) mod records;
pub(crate) mod setup;
