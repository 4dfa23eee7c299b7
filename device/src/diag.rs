//! Diagnostics. With the `defmt` feature events go to `defmt`; without it they compile to
//! nothing. (C firmware gets the same events from the C ABI's log callback.)

#[cfg(feature = "defmt")]
macro_rules! diag {
    ($($arg:tt)*) => { defmt::debug!($($arg)*) };
}

#[cfg(not(feature = "defmt"))]
macro_rules! diag {
    ($($arg:tt)*) => {{}};
}

pub(crate) use diag;
