//! OpenSSL's own allocations through mimalloc, like Rust's (the binary's global allocator), and
//! transparent huge pages off for the process.
//!
//! A full handshake makes about a thousand `malloc`/`free` calls inside OpenSSL. With glibc's
//! allocator in a multi-threaded process each one that misses the thread cache takes an arena
//! lock, where nginx's single-threaded workers skip it: `bench/README.md` measures the lever.
//! `CRYPTO_set_mem_functions` hands OpenSSL our functions without replacing the process's
//! `malloc` symbol, so an `LD_PRELOAD` library such as `faketime` still works (mimalloc's
//! `override` feature crashed under it).

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void};

type MallocFn = unsafe extern "C" fn(usize, *const c_char, c_int) -> *mut c_void;
type ReallocFn = unsafe extern "C" fn(*mut c_void, usize, *const c_char, c_int) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void, *const c_char, c_int);

// libcrypto is linked through openssl-sys, which does not declare this one (OpenSSL 1.1 and 3.x
// share its signature).
extern "C" {
    fn CRYPTO_set_mem_functions(m: MallocFn, r: ReallocFn, f: FreeFn) -> c_int;
}

unsafe extern "C" fn malloc(size: usize, _file: *const c_char, _line: c_int) -> *mut c_void {
    // SAFETY: plain allocation; mimalloc accepts any size, 0 included.
    unsafe { libmimalloc_sys::mi_malloc(size) }
}

unsafe extern "C" fn realloc(
    ptr: *mut c_void,
    size: usize,
    _file: *const c_char,
    _line: c_int,
) -> *mut c_void {
    // SAFETY: OpenSSL passes null or a pointer it got from `malloc`/`realloc` above.
    unsafe { libmimalloc_sys::mi_realloc(ptr, size) }
}

unsafe extern "C" fn free(ptr: *mut c_void, _file: *const c_char, _line: c_int) {
    // SAFETY: as for `realloc`; mimalloc frees from any thread.
    unsafe { libmimalloc_sys::mi_free(ptr) }
}

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`, what mimalloc's
/// `allow_thp=0` does) before mimalloc starts: mimalloc asks for huge pages on its 1 GiB arena,
/// and each first touch there then made a 2 MiB page resident, about 11 MiB in all (22.9
/// against 11.9 MiB idle, 29.3 against 16.0 MiB at 64 busy connections; `bench/README.md`),
/// with no gain in speed. Run as a constructor of priority 100, before mimalloc's (101) and
/// before Rust's runtime allocates; called from `main` it came too late for the pages mimalloc
/// had touched by then.
extern "C" fn no_huge_pages() {
    // SAFETY: prctl with integer arguments; it sets a flag of this process's memory map only.
    // Refused (an old kernel), the process runs as before.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[used]
#[unsafe(link_section = ".init_array.00100")]
static NO_HUGE_PAGES: extern "C" fn() = no_huge_pages;

/// Whether transparent huge pages are off for this process (see [`NO_HUGE_PAGES`]).
pub fn huge_pages_off() -> bool {
    // SAFETY: reads a flag of this process.
    unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
}

/// Routes OpenSSL's allocations to mimalloc. Call it first thing in `main`, before anything
/// touches OpenSSL; returns false (and changes nothing) if OpenSSL had already allocated.
pub fn install() -> bool {
    // SAFETY: OpenSSL accepts new functions only while it has allocated nothing (it returns 0
    // otherwise), so no block can be freed by an allocator that did not make it. The three
    // functions have the C signatures OpenSSL declares and stay valid for the process's life.
    unsafe { CRYPTO_set_mem_functions(malloc, realloc, free) == 1 }
}
