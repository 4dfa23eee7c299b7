//! Diagnostics to the platform's log callback: short lines put together on the stack from
//! string and integer pieces (no `core::fmt`, which would add kilobytes to the image).

use crate::flash::chunkprov_platform;

/// Severity of a log line.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum chunkprov_log_level {
    /// The library could not do what was asked (flash failure).
    Error = 1,
    /// A frame was rejected; credentials were rolled back.
    Warn = 2,
    /// Milestones: a transfer started, the bundle is complete, connections.
    Info = 3,
    /// Every frame and message.
    Debug = 4,
}

/// Longest log line, including the terminating NUL.
const LINE: usize = 96;

pub(crate) struct Line {
    buf: [u8; LINE],
    len: usize,
}

impl Line {
    pub(crate) const fn new() -> Self {
        Self {
            buf: [0; LINE],
            len: 0,
        }
    }

    fn push(&mut self, b: u8) {
        // Keep one byte for the NUL; cut silently when full.
        if self.len + 1 < LINE {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    pub(crate) fn emit(mut self, platform: &chunkprov_platform, level: chunkprov_log_level) {
        let Some(cb) = platform.log else { return };
        if let Some(end) = self.buf.get_mut(self.len) {
            *end = 0;
        }
        self.len = 0;
        // SAFETY: the callback was supplied by the caller for exactly this use; the line is
        // NUL-terminated and outlives the call.
        unsafe { cb(platform.ctx, level, self.buf.as_ptr().cast()) };
    }
}

/// Something that can be put in a log line.
pub(crate) trait Piece {
    fn put(&self, line: &mut Line);
}

impl Piece for &str {
    fn put(&self, line: &mut Line) {
        for &b in self.as_bytes() {
            line.push(b);
        }
    }
}

fn decimal(line: &mut Line, negative: bool, v: u32) {
    if negative {
        line.push(b'-');
    }
    let mut digits = [0u8; 10];
    for &d in chunkprov_device::protocol::decimal(v, &mut digits) {
        line.push(d);
    }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl Piece for $t {
            fn put(&self, line: &mut Line) {
                decimal(line, false, *self as u32);
            }
        }
    )*};
}
unsigned!(u8, u16, u32, usize);

impl Piece for i32 {
    fn put(&self, line: &mut Line) {
        decimal(line, *self < 0, self.unsigned_abs());
    }
}

/// An integer written in hexadecimal, `0x` first.
pub(crate) struct Hex(pub u32);

impl Piece for Hex {
    fn put(&self, line: &mut Line) {
        line.push(b'0');
        line.push(b'x');
        let mut started = false;
        for shift in (0..8).rev() {
            let nibble = ((self.0 >> (shift * 4)) & 0xF) as u8;
            if nibble != 0 || started || shift == 0 {
                started = true;
                line.push(if nibble < 10 {
                    b'0' + nibble
                } else {
                    b'a' + nibble - 10
                });
            }
        }
    }
}

/// `log!(platform, Level, piece, piece, …)`: one line to the platform's log callback, if it has
/// one. Pieces are string slices, unsigned integers, `i32` and [`Hex`].
macro_rules! log {
    ($platform:expr, $level:ident, $($piece:expr),+ $(,)?) => {{
        let platform: &$crate::flash::chunkprov_platform = $platform;
        if platform.log.is_some() {
            let mut line = $crate::log::Line::new();
            $( $crate::log::Piece::put(&$piece, &mut line); )+
            line.emit(platform, $crate::log::chunkprov_log_level::$level);
        }
    }};
}
pub(crate) use log;
