//! The awc + OpenSSL client (issue #4): not built yet.
