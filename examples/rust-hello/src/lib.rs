//! A wisp function written in Rust: replies "hello from rust, <body>".
//!
//! wisp loads any shared object that exports the two C symbols of
//! functions/include/wisp/function.h, so the structs below mirror that
//! header field for field (#[repr(C)]). No crates are needed.

use std::os::raw::{c_char, c_int, c_void};

const WISP_ABI_VERSION: u32 = 1;

#[repr(C)]
pub struct WispStr {
    data: *const c_char,
    len: usize,
}

#[repr(C)]
pub struct WispHeader {
    name: WispStr,
    value: WispStr,
}

/// Opaque: owned by the runtime.
#[repr(C)]
pub struct WispCtx {
    _private: [u8; 0],
}

#[repr(C)]
pub struct WispHost {
    size: u32,
    abi_version: u32,
    write: extern "C" fn(*mut WispCtx, *const c_void, usize) -> c_int,
    set_status: extern "C" fn(*mut WispCtx, c_int) -> c_int,
    set_header: extern "C" fn(*mut WispCtx, *const c_char, *const c_char) -> c_int,
    emit: extern "C" fn(*mut WispCtx, *const c_char, *const c_void, usize) -> c_int,
    log: extern "C" fn(*mut WispCtx, c_int, *const c_char, usize) -> c_int,
}

#[repr(C)]
pub struct WispRequest {
    size: u32,
    trigger: u32,
    host: *const WispHost,
    method: WispStr,
    path: WispStr,
    query: WispStr,
    headers: *const WispHeader,
    header_count: usize,
    subject: WispStr,
    body: *const c_void,
    body_len: usize,
    attempt: u32,
    reserved: u32,
}

#[no_mangle]
pub extern "C" fn wisp_abi_version() -> u32 {
    WISP_ABI_VERSION
}

/// # Safety
/// Called by the runtime with a valid context and request, which live for
/// the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn wisp_handle(
    _state: *mut c_void,
    ctx: *mut WispCtx,
    req: *const WispRequest,
) -> c_int {
    let req = &*req;
    let host = &*req.host;
    let body = std::slice::from_raw_parts(req.body as *const u8, req.body_len);
    let mut reply = b"hello from rust, ".to_vec();
    reply.extend_from_slice(body);
    (host.set_header)(ctx, b"x-wisp-language\0".as_ptr() as *const c_char,
                      b"rust\0".as_ptr() as *const c_char);
    (host.write)(ctx, reply.as_ptr() as *const c_void, reply.len())
}
