//! The actix-web + OpenSSL server (issue #3): not built yet.
