//! Diagnostics to the platform's log callback: short lines put together on the stack from a
//! template and integer or string arguments by one out-of-line writer, [`write`] (no
//! `core::fmt`, which would add kilobytes to the image). A call site lists its pieces; the macro
//! turns them into one template and the arguments. Rejection codes are written
//! as their numbers (the protocol's codes, which are also the status values; see
//! `chunkprov_status_name()`).
//!
//! Without the `log` feature no line is built and the callback is never called: every `log!`
//! compiles to nothing.

use crate::flash::chunkprov_platform;
use chunkprov_device::protocol::RejectCode;

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

/// One piece of a log line.
#[derive(Clone, Copy)]
pub(crate) enum Piece<'a> {
    Str(&'a str),
    Unsigned(u32),
    Signed(i32),
    Hex(u32),
}

/// An integer written in hexadecimal, `0x` and eight digits.
pub(crate) struct Hex(pub u32);

impl<'a> From<&'a str> for Piece<'a> {
    #[inline(always)]
    fn from(s: &'a str) -> Self {
        Piece::Str(s)
    }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl From<$t> for Piece<'_> {
            #[inline(always)]
            fn from(v: $t) -> Self {
                Piece::Unsigned(v as u32)
            }
        }
    )*};
}
unsigned!(u8, u16, u32, usize);

impl From<i32> for Piece<'_> {
    #[inline(always)]
    fn from(v: i32) -> Self {
        Piece::Signed(v)
    }
}

impl From<Hex> for Piece<'_> {
    #[inline(always)]
    fn from(v: Hex) -> Self {
        Piece::Hex(v.0)
    }
}

impl From<RejectCode> for Piece<'_> {
    #[inline(always)]
    fn from(code: RejectCode) -> Self {
        Piece::Unsigned(u32::from(code as u16))
    }
}

struct Line {
    buf: [u8; LINE],
    len: usize,
}

impl Line {
    fn push(&mut self, b: u8) {
        // Keep one byte for the NUL; cut silently when full.
        if self.len + 1 < LINE {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    fn push_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }
}

/// Marks where the next argument goes in a template.
pub(crate) const ARG: u8 = 1;

/// Writes one line to the platform's log callback, if it has one: the template's text with each
/// [`ARG`] byte replaced by the next of `args`.
#[inline(never)]
pub(crate) fn write(
    platform: &chunkprov_platform,
    level: chunkprov_log_level,
    template: &str,
    args: &[Piece],
) {
    let Some(cb) = platform.log else { return };
    let mut line = Line {
        buf: [0; LINE],
        len: 0,
    };
    let mut args = args.iter();
    for &b in template.as_bytes() {
        if b != ARG {
            line.push(b);
            continue;
        }
        let mut digits = [0u8; 10];
        match args.next() {
            Some(Piece::Str(s)) => line.push_all(s.as_bytes()),
            Some(&Piece::Unsigned(v)) => {
                line.push_all(chunkprov_device::protocol::decimal(v, &mut digits));
            }
            Some(&Piece::Signed(v)) => {
                if v < 0 {
                    line.push(b'-');
                }
                let digits = chunkprov_device::protocol::decimal(v.unsigned_abs(), &mut digits);
                line.push_all(digits);
            }
            Some(&Piece::Hex(v)) => {
                // All eight digits: flash offsets line up, and the loop stays short.
                line.push_all(b"0x");
                for shift in (0..8).rev() {
                    let nibble = ((v >> (shift * 4)) & 0xF) as u8;
                    line.push(nibble + if nibble < 10 { b'0' } else { b'a' - 10 });
                }
            }
            None => {}
        }
    }
    if let Some(end) = line.buf.get_mut(line.len) {
        *end = 0;
    }
    // SAFETY: the callback was supplied by the caller for exactly this use; the line is
    // NUL-terminated and outlives the call.
    unsafe { cb(platform.ctx, level, line.buf.as_ptr().cast()) };
}

/// `log!(platform, Level, piece, piece, …)`: one line to the platform's log callback, if it has
/// one. Pieces are string literals, string slices, unsigned integers, `i32`, [`Hex`] and
/// rejection codes (as numbers). The literals are joined at compile time into one template with
/// an [`ARG`] byte for each other piece, so a call site passes one string and its arguments.
/// Without the `log` feature nothing is evaluated or written.
macro_rules! log {
    ($platform:expr, $level:ident, $($pieces:tt)+) => {
        $crate::log::log!(@split [$platform, $level] [] [] [] $($pieces)+)
    };
    // Splits the pieces at top-level commas: [template literals] [arguments] [current piece].
    (@split $ctx:tt $t:tt $a:tt [$($cur:tt)+] , $($rest:tt)*) => {
        $crate::log::log!(@piece $ctx $t $a [$($cur)+] $($rest)*)
    };
    (@split $ctx:tt $t:tt $a:tt [$($cur:tt)*] $next:tt $($rest:tt)*) => {
        $crate::log::log!(@split $ctx $t $a [$($cur)* $next] $($rest)*)
    };
    (@split $ctx:tt $t:tt $a:tt [$($cur:tt)+]) => {
        $crate::log::log!(@piece $ctx $t $a [$($cur)+])
    };
    // A literal joins the template; anything else becomes an argument and an ARG byte.
    (@piece $ctx:tt [$($t:tt)*] $a:tt [$l:literal] $($rest:tt)*) => {
        $crate::log::log!(@next $ctx [$($t)* $l,] $a $($rest)*)
    };
    (@piece $ctx:tt [$($t:tt)*] [$($a:tt)*] [$($e:tt)+] $($rest:tt)*) => {
        $crate::log::log!(@next $ctx [$($t)* "\u{1}",] [$($a)* ($($e)+),] $($rest)*)
    };
    (@next $ctx:tt $t:tt $a:tt $($rest:tt)+) => {
        $crate::log::log!(@split $ctx $t $a [] $($rest)+)
    };
    (@next [$platform:expr, $level:ident] [$($t:tt)*] [$(($($a:tt)+),)*]) => {
        if cfg!(feature = "log") {
            $crate::log::write(
                $platform,
                $crate::log::chunkprov_log_level::$level,
                concat!($($t)*),
                &[$($crate::log::Piece::from($($a)+)),*],
            );
        }
    };
}
pub(crate) use log;
