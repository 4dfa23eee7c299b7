//! Diagnostics to the platform's log callback: short lines formatted on the stack.

use crate::flash::chunkprov_platform;
use core::fmt::{self, Write};

/// Severity of a log line.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum chunkprov_log_level {
    /// The library could not do what was asked (flash failure).
    Error = 1,
    /// A frame was rejected.
    Warn = 2,
    /// Milestones: a transfer started, the bundle is complete.
    Info = 3,
    /// Every frame.
    Debug = 4,
}

/// Longest log line, including the terminating NUL.
const LINE: usize = 96;

struct Line {
    buf: [u8; LINE],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep one byte for the NUL; cut silently when full.
        for &b in s.as_bytes() {
            if self.len + 1 >= LINE {
                break;
            }
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Formats a line and hands it to the platform's log callback, if it has one.
pub(crate) fn log(
    platform: &chunkprov_platform,
    level: chunkprov_log_level,
    args: fmt::Arguments<'_>,
) {
    let Some(cb) = platform.log else { return };
    let mut line = Line {
        buf: [0; LINE],
        len: 0,
    };
    let _ = line.write_fmt(args);
    if let Some(end) = line.buf.get_mut(line.len) {
        *end = 0;
    }
    // SAFETY: the callback was supplied by the caller for exactly this use; the line is
    // NUL-terminated and outlives the call.
    unsafe { cb(platform.ctx, level, line.buf.as_ptr().cast()) };
}
