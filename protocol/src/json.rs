//! A small JSON writer for the device's messages: objects of string, integer and
//! integer-array fields, written into a caller's buffer. The messages also derive `serde`'s
//! traits (the cloud decodes them with any serde JSON decoder); this writer exists so the device
//! encodes them without a general serializer, in less code and with no panic path. Its output
//! is checked against `serde_json`'s in the tests of each message.

/// The buffer was too small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Writes one JSON object.
pub(crate) struct Object<'b> {
    out: &'b mut [u8],
    at: usize,
    first: bool,
}

impl<'b> Object<'b> {
    pub(crate) fn new(out: &'b mut [u8]) -> Result<Self, Full> {
        let mut o = Self {
            out,
            at: 0,
            first: true,
        };
        o.raw(b"{")?;
        Ok(o)
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), Full> {
        let dst = self
            .out
            .get_mut(self.at..self.at + bytes.len())
            .ok_or(Full)?;
        crate::copy_prefix(dst, bytes);
        self.at += bytes.len();
        Ok(())
    }

    fn key(&mut self, name: &str) -> Result<(), Full> {
        if !self.first {
            self.raw(b",")?;
        }
        self.first = false;
        self.raw(b"\"")?;
        self.raw(name.as_bytes())?;
        self.raw(b"\":")
    }

    fn uint_value(&mut self, v: u32) -> Result<(), Full> {
        let mut digits = [0u8; 10];
        self.raw(crate::decimal(v, &mut digits))
    }

    /// `"name":"value"`, escaping `"`, `\` and control characters as JSON requires.
    pub(crate) fn string(&mut self, name: &str, value: &str) -> Result<(), Full> {
        self.key(name)?;
        self.raw(b"\"")?;
        for &b in value.as_bytes() {
            match b {
                b'"' => self.raw(b"\\\"")?,
                b'\\' => self.raw(b"\\\\")?,
                b'\n' => self.raw(b"\\n")?,
                b'\r' => self.raw(b"\\r")?,
                b'\t' => self.raw(b"\\t")?,
                0..=0x1F => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let hi = HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
                    let lo = HEX.get(usize::from(b & 0xF)).copied().unwrap_or(b'0');
                    self.raw(&[b'\\', b'u', b'0', b'0', hi, lo])?
                }
                _ => self.raw(&[b])?,
            }
        }
        self.raw(b"\"")
    }

    /// `"name":123`.
    pub(crate) fn uint(&mut self, name: &str, value: u32) -> Result<(), Full> {
        self.key(name)?;
        self.uint_value(value)
    }

    /// `"name":[1,2,3]`.
    pub(crate) fn uints(&mut self, name: &str, values: &[u16]) -> Result<(), Full> {
        self.key(name)?;
        self.raw(b"[")?;
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.raw(b",")?;
            }
            self.uint_value(u32::from(*v))?;
        }
        self.raw(b"]")
    }

    /// Closes the object; returns its length.
    pub(crate) fn finish(mut self) -> Result<usize, Full> {
        self.raw(b"}")?;
        Ok(self.at)
    }
}
