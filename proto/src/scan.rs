//! A byte-level JSON reader for the fixed uplink schemas (Geoward JSON and
//! OwnTracks), several times faster than `serde_json` on these payloads
//! (`benches/RESULTS.md`) and allocation-free unless a string contains
//! escapes (or a skipped value nests deeper than 64 levels).
//!
//! Why hand-written: decode throughput is a protocol goal (PROTOCOL.md,
//! "JSON ≥ 2 M/s per core"), and even `serde_json::Value` parsing is slower
//! than that. The schemas are fixed and small, so the codecs read fields
//! straight into their wire structs.
//!
//! **Acceptance is exactly `serde_json` 1.0's** for the derive-based wire
//! structs that decoded these payloads before (kept as the test oracle in
//! `oracle.rs`, which checks the two agree on arbitrary and mutated inputs):
//! RFC 8259 syntax with whitespace `' ' \n \t \r` anywhere between tokens;
//! strings must be UTF-8 without raw control characters, escapes decoded,
//! `\uXXXX` surrogates must pair; integers must be written without fraction or
//! exponent and fit the field's type (`-0` is a float); any number must be
//! finite as an `f64`; enums are a string or `{"name":null}`; a struct may
//! also be written as an array of all its fields in declaration order (a
//! serde quirk kept so no input changes meaning); only whitespace may follow
//! the value. Floats are correctly rounded (what `serde_json` does with its
//! `float_roundtrip` feature), whatever features the workspace enables.
//! Ignored values (unknown OwnTracks fields) are skipped without recursion
//! and, as in `serde_json`, without a depth limit; the schemas themselves nest
//! at most four levels.
//!
//! Every error is a [`Syntax`] and becomes `bad_json`; where in the input it
//! was found is all the message says, so the order of checks does not matter.

use std::borrow::Cow;

use crate::error::DecodeError;

/// Malformed JSON or a value of the wrong type: reason `bad_json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Syntax {
    what: &'static str,
    at: usize,
}

impl Syntax {
    /// The typed decode error (cold: formats a message).
    #[cold]
    pub(crate) fn into_error(self) -> DecodeError {
        DecodeError::BadJson(format!("{} at byte {}", self.what, self.at))
    }
}

/// A read step failed; the [`Reader`] holds the [`Syntax`] error. A
/// zero-sized error keeps every `Res` small enough to return in registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failed;

/// Result of a read step.
pub(crate) type Res<T> = Result<T, Failed>;

/// Exact powers of ten for the fast float path.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Powers of ten that fit `u64`.
const POW10_U64: [u64; 20] = {
    let mut p = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// A cursor over one JSON document. Invariant: `pos <= bytes.len()`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    error: Option<Syntax>,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader {
            bytes,
            pos: 0,
            error: None,
        }
    }

    /// Records an error at the current position.
    #[cold]
    pub(crate) fn error(&mut self, what: &'static str) -> Failed {
        self.error = Some(Syntax { what, at: self.pos });
        Failed
    }

    #[cold]
    fn fail<T>(&mut self, what: &'static str) -> Res<T> {
        Err(self.error(what))
    }

    /// The error a failed step recorded.
    #[cold]
    pub(crate) fn syntax(&self) -> Syntax {
        self.error.unwrap_or(Syntax {
            what: "malformed json",
            at: self.pos,
        })
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Skips whitespace and returns the next byte without consuming it.
    #[inline(always)]
    pub(crate) fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b' ' | b'\n' | b'\t' | b'\r' => self.pos += 1,
                _ => return Some(b),
            }
        }
        None
    }

    /// Consumes the byte `peek` returned.
    #[inline(always)]
    pub(crate) fn bump(&mut self) {
        self.pos += 1;
    }

    /// Consumes `lit` if the input continues with exactly it (no whitespace
    /// skipped): the fast paths for the encoders' own layout.
    #[inline(always)]
    pub(crate) fn lit(&mut self, lit: &[u8]) -> bool {
        let end = self.pos + lit.len();
        if self.bytes.get(self.pos..end) == Some(lit) {
            self.pos = end;
            true
        } else {
            false
        }
    }

    /// The position, to rewind to after a fast path gave up.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Rewinds to a position from [`Reader::position`] and forgets errors.
    pub(crate) fn rewind(&mut self, pos: usize) {
        self.pos = pos;
        self.error = None;
    }

    /// Only whitespace may follow the document.
    pub(crate) fn end(&mut self) -> Res<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.fail("trailing characters"),
        }
    }

    /// The rest of a literal whose first byte was consumed.
    #[inline(always)]
    fn ident(&mut self, rest: &[u8]) -> Res<()> {
        if self.bytes[self.pos..].starts_with(rest) {
            self.pos += rest.len();
            Ok(())
        } else {
            self.fail("expected ident")
        }
    }

    /// Consumes `null` and returns true, or returns false before any other
    /// value (an optional field: `null` means absent).
    #[inline(always)]
    pub(crate) fn null(&mut self) -> Res<bool> {
        if self.peek() == Some(b'n') {
            self.pos += 1;
            self.ident(b"ull")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Inside an object after `{`: true when positioned just after the
    /// opening quote of the next key, false after the closing `}`.
    #[inline(always)]
    pub(crate) fn object_next(&mut self, first: &mut bool) -> Res<bool> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                Ok(false)
            }
            Some(b'"') if *first => {
                *first = false;
                self.pos += 1;
                Ok(true)
            }
            Some(b',') if !*first => {
                self.pos += 1;
                if self.peek() == Some(b'"') {
                    self.pos += 1;
                    Ok(true)
                } else {
                    self.fail("expected a key")
                }
            }
            Some(_) => self.fail("expected `,` or `}`"),
            None => self.fail("eof while parsing an object"),
        }
    }

    /// Inside an array after `[`: true before the next element, false after
    /// the closing `]`.
    #[inline]
    pub(crate) fn array_next(&mut self, first: &mut bool) -> Res<bool> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                Ok(false)
            }
            Some(_) if *first => {
                *first = false;
                Ok(true)
            }
            Some(b',') => {
                self.pos += 1;
                match self.peek() {
                    Some(b']') => self.fail("trailing comma"),
                    Some(_) => Ok(true),
                    None => self.fail("eof while parsing a value"),
                }
            }
            Some(_) => self.fail("expected `,` or `]`"),
            None => self.fail("eof while parsing a list"),
        }
    }

    /// The `:` after a key.
    #[inline(always)]
    pub(crate) fn colon(&mut self) -> Res<()> {
        if self.peek() == Some(b':') {
            self.pos += 1;
            Ok(())
        } else {
            self.fail("expected `:`")
        }
    }

    /// After a key's opening quote: the index in `table` of the name that
    /// follows, or `None`. Consumes nothing: the caller skips `name"` with
    /// [`Reader::value`].
    ///
    /// One 16-byte load, a SWAR search for the first `"`, one hash probe and
    /// one compare: a hit is exactly a key without escapes equal to a name
    /// (a name has no quote, backslash or control character, so a key that
    /// contains one never matches). Anything else, including a key that is
    /// too close to the end of the input for the load, returns `None` and is
    /// read by [`Reader::key`].
    #[inline(always)]
    fn table_key(&mut self, table: &KeyTable) -> Option<usize> {
        let chunk = self.bytes.get(self.pos..self.pos + 16)?;
        let mut word = [0u8; 16];
        word.copy_from_slice(chunk);
        let word = u128::from_le_bytes(word);
        // First `"`: the lowest byte whose XOR with `"` is zero (the
        // borrow trick can flag bytes above the first zero, never below).
        let x = word ^ (u128::MAX / 255 * u128::from(b'"'));
        let zero = x.wrapping_sub(u128::MAX / 255) & !x & (u128::MAX / 255 * 0x80);
        if zero == 0 {
            return None;
        }
        let len = zero.trailing_zeros() as usize / 8 + 1;
        let masked = if len == 16 {
            word
        } else {
            word & ((1u128 << (8 * len)) - 1)
        };
        let slot = table.slots[table.slot(masked as u64)];
        let key = table.keys.get(usize::from(slot))?;
        if key.pattern == masked {
            Some(usize::from(slot))
        } else {
            None
        }
    }

    /// The start of a field's value: after a key [`Reader::table_key`] found
    /// (`pending`: the name of `len` bytes, its quote and the colon are still
    /// to be consumed) or after a key and colon already read. False for
    /// `null` (an absent optional field), which it consumes.
    ///
    /// Callers pass `len` as a constant in code reached by dispatching on the
    /// field, so the position after the key does not wait for the lookup
    /// (the dispatch branch is predicted; a computed length would put the
    /// key's bytes on every later load's critical path).
    #[inline(always)]
    pub(crate) fn value(&mut self, pending: bool, len: usize) -> Res<bool> {
        if pending {
            self.pos += len + 1;
            self.colon()?;
        }
        Ok(!self.null()?)
    }

    /// A key of a struct whose field names are ASCII, after its opening
    /// quote: the raw bytes when it has no escapes (not checked further,
    /// since an invalid one matches no field name), otherwise the decoded
    /// and checked string.
    #[inline]
    pub(crate) fn key(&mut self) -> Res<Cow<'a, [u8]>> {
        let start = self.pos;
        let mut i = start;
        while let Some(&b) = self.bytes.get(i) {
            if b == b'"' {
                self.pos = i + 1;
                return Ok(Cow::Borrowed(&self.bytes[start..i]));
            }
            if b == b'\\' || b < 0x20 {
                break;
            }
            i += 1;
        }
        Ok(match self.string()? {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        })
    }

    /// A string value (`"` not yet consumed).
    #[inline(always)]
    pub(crate) fn text(&mut self) -> Res<Cow<'a, str>> {
        if self.peek() == Some(b'"') {
            self.pos += 1;
            self.string()
        } else {
            self.fail("expected a string")
        }
    }

    /// A string after its opening quote, escapes decoded; borrowed unless it
    /// has escapes.
    #[inline(always)]
    pub(crate) fn string(&mut self) -> Res<Cow<'a, str>> {
        let start = self.pos;
        let mut i = start;
        while let Some(&b) = self.bytes.get(i) {
            if b == b'"' {
                self.pos = i + 1;
                return match std::str::from_utf8(&self.bytes[start..i]) {
                    Ok(s) => Ok(Cow::Borrowed(s)),
                    Err(_) => self.fail("invalid utf-8 in a string"),
                };
            }
            if b == b'\\' || b < 0x20 {
                break;
            }
            i += 1;
        }
        self.pos = i;
        self.string_with_escapes(start)
    }

    #[cold]
    fn string_with_escapes(&mut self, start: usize) -> Res<Cow<'a, str>> {
        let mut buf = self.bytes[start..self.pos].to_vec();
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                return self.fail("eof while parsing a string");
            };
            self.pos += 1;
            match b {
                b'"' => {
                    return match String::from_utf8(buf) {
                        Ok(s) => Ok(Cow::Owned(s)),
                        Err(_) => self.fail("invalid utf-8 in a string"),
                    };
                }
                b'\\' => self.escape(&mut buf)?,
                0..=0x1f => return self.fail("control character in a string"),
                _ => buf.push(b),
            }
        }
    }

    fn next_byte(&mut self) -> Res<u8> {
        match self.bytes.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.fail("eof while parsing a string"),
        }
    }

    fn hex4(&mut self) -> Res<u16> {
        let Some(digits) = self.bytes.get(self.pos..self.pos + 4) else {
            self.pos = self.bytes.len();
            return self.fail("eof while parsing a string");
        };
        self.pos += 4;
        let mut n = 0u16;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return self.fail("invalid escape"),
            };
            n = n << 4 | u16::from(v);
        }
        Ok(n)
    }

    /// One escape after its backslash, appended to `buf` as UTF-8. Lone
    /// surrogates are errors (the string must become a `str`).
    fn escape(&mut self, buf: &mut Vec<u8>) -> Res<()> {
        let c = match self.next_byte()? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let n = self.hex4()?;
                let code = match n {
                    0xDC00..=0xDFFF => return self.fail("lone trailing surrogate"),
                    0xD800..=0xDBFF => {
                        if self.next_byte()? != b'\\' || self.next_byte()? != b'u' {
                            return self.fail("unexpected end of hex escape");
                        }
                        let n2 = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&n2) {
                            return self.fail("lone leading surrogate");
                        }
                        ((u32::from(n - 0xD800) << 10) | u32::from(n2 - 0xDC00)) + 0x1_0000
                    }
                    _ => u32::from(n),
                };
                match char::from_u32(code) {
                    Some(c) => c,
                    None => return self.fail("invalid escape"),
                }
            }
            _ => return self.fail("invalid escape"),
        };
        let mut tmp = [0u8; 4];
        buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        Ok(())
    }

    /// Skips a string after its opening quote the way `serde_json` skips an
    /// ignored one: escapes must be well-formed, control characters are
    /// errors, but neither UTF-8 nor surrogate pairing is checked.
    fn skip_string(&mut self) -> Res<()> {
        loop {
            match self.next_byte()? {
                b'"' => return Ok(()),
                b'\\' => match self.next_byte()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        self.hex4()?;
                    }
                    _ => return self.fail("invalid escape"),
                },
                0..=0x1f => return self.fail("control character in a string"),
                _ => {}
            }
        }
    }

    /// `true` or `false`.
    #[inline(always)]
    pub(crate) fn bool(&mut self) -> Res<bool> {
        match self.peek() {
            Some(b't') => {
                self.pos += 1;
                self.ident(b"rue")?;
                Ok(true)
            }
            Some(b'f') => {
                self.pos += 1;
                self.ident(b"alse")?;
                Ok(false)
            }
            _ => self.fail("expected a boolean"),
        }
    }

    /// Consumes a run of ASCII digits; returns how many and their value
    /// (wrapping: exact only for at most 19 digits).
    #[inline(always)]
    fn digits(&mut self) -> (usize, u64) {
        let start = self.pos;
        let mut v = 0u64;
        // Eight at a time (SWAR, as simdjson does) while all eight are digits.
        while let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let w = u64::from_le_bytes(word);
            let high = w & 0xF0F0_F0F0_F0F0_F0F0;
            let carry = (w.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) >> 4;
            if high | carry != 0x3333_3333_3333_3333 {
                break;
            }
            let x = w.wrapping_sub(0x3030_3030_3030_3030);
            let x = x.wrapping_mul(10).wrapping_add(x >> 8);
            let x = ((x & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32))
                + ((x >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32)))
                >> 32;
            v = v.wrapping_mul(100_000_000).wrapping_add(x);
            self.pos += 8;
        }
        while let Some(&b) = self.bytes.get(self.pos) {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            v = v.wrapping_mul(10).wrapping_add(u64::from(d));
            self.pos += 1;
        }
        (self.pos - start, v)
    }

    /// Digits of an integer part: a single `0` or `[1-9][0-9]*`. Returns the
    /// value, or `None` if it overflows `u64`.
    #[inline(always)]
    fn int_digits(&mut self) -> Res<Option<u64>> {
        let start = self.pos;
        let (n, v) = self.digits();
        if n == 0 || (n > 1 && self.bytes[start] == b'0') {
            return self.fail("invalid number");
        }
        if n <= 19 {
            Ok(Some(v))
        } else {
            Ok(self.big_integer(start))
        }
    }

    /// The value of more than 19 digits at `start..pos`, if it fits `u64`.
    #[cold]
    fn big_integer(&mut self, start: usize) -> Option<u64> {
        self.bytes[start..self.pos].iter().try_fold(0u64, |v, &d| {
            v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
    }

    /// An integer: sign and magnitude. A fraction or exponent makes the
    /// number a float, which no integer field accepts.
    #[inline(always)]
    fn integer(&mut self) -> Res<(bool, Option<u64>)> {
        let negative = match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                true
            }
            Some(b'0'..=b'9') => false,
            _ => return self.fail("expected a number"),
        };
        let magnitude = self.int_digits()?;
        if matches!(self.bytes.get(self.pos), Some(b'.' | b'e' | b'E')) {
            return self.fail("expected an integer");
        }
        Ok((negative, magnitude))
    }

    /// A non-negative integer that fits `u64`.
    #[inline(always)]
    pub(crate) fn u64(&mut self) -> Res<u64> {
        match self.integer()? {
            (false, Some(v)) => Ok(v),
            _ => self.fail("expected an unsigned integer"),
        }
    }

    /// An integer that fits `i64` (`-0` is a float in JSON's data model as
    /// serde_json reads it, so it is rejected like any float).
    #[inline(always)]
    pub(crate) fn i64(&mut self) -> Res<i64> {
        match self.integer()? {
            (false, Some(v)) if v <= i64::MAX as u64 => Ok(v as i64),
            (true, Some(v)) if (1..=1u64 << 63).contains(&v) => Ok((v as i64).wrapping_neg()),
            _ => self.fail("integer out of range"),
        }
    }

    /// An integer that fits `u8`.
    #[inline(always)]
    pub(crate) fn u8(&mut self) -> Res<u8> {
        let v = self.u64()?;
        u8::try_from(v).or_else(|_| self.fail("integer out of range"))
    }

    /// An integer that fits `i8`.
    #[inline(always)]
    pub(crate) fn i8(&mut self) -> Res<i8> {
        let v = self.i64()?;
        i8::try_from(v).or_else(|_| self.fail("integer out of range"))
    }

    /// Any number as the nearest `f64`; one too large for `f64` is an error.
    #[inline(always)]
    pub(crate) fn f64(&mut self) -> Res<f64> {
        let start = match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.pos,
            _ => return self.fail("expected a number"),
        };
        let negative = self.bytes[start] == b'-';
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        let (int_len, int_value) = self.digits();
        if int_len == 0 || (int_len > 1 && self.bytes[int_start] == b'0') {
            return self.fail("invalid number");
        }
        let mut mantissa = int_value;
        let mut digits = int_len;
        let mut exponent = 0i64;
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            let (frac_len, frac_value) = self.digits();
            if frac_len == 0 {
                return self.fail("invalid number");
            }
            digits += frac_len;
            if digits <= 19 {
                mantissa = mantissa * POW10_U64[frac_len] + frac_value;
            }
            exponent = -(frac_len as i64);
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            let negative_exp = match self.bytes.get(self.pos) {
                Some(b'-') => {
                    self.pos += 1;
                    true
                }
                Some(b'+') => {
                    self.pos += 1;
                    false
                }
                _ => false,
            };
            let exp_start = self.pos;
            let (exp_len, _) = self.digits();
            if exp_len == 0 {
                return self.fail("invalid number");
            }
            let e = self.bytes[exp_start..self.pos]
                .iter()
                .fold(0i64, |e, &d| (e * 10 + i64::from(d - b'0')).min(1 << 40));
            exponent += if negative_exp { -e } else { e };
        }
        let value = if digits <= 19 && mantissa < 1 << 53 && (-22..=22).contains(&exponent) {
            // Clinger's fast path: both operands exact, one rounding.
            let m = mantissa as f64;
            let v = if exponent < 0 {
                m / POW10[exponent.unsigned_abs() as usize]
            } else {
                m * POW10[exponent as usize]
            };
            if negative { -v } else { v }
        } else {
            self.slow_float(start)?
        };
        if value.is_infinite() {
            return self.fail("number out of range");
        }
        Ok(value)
    }

    /// Correctly rounded parse of the validated number token at `start..pos`.
    #[cold]
    fn slow_float(&mut self, start: usize) -> Res<f64> {
        match std::str::from_utf8(&self.bytes[start..self.pos])
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
        {
            Some(v) => Ok(v),
            None => self.fail("invalid number"),
        }
    }

    /// A unit enum variant: `"name"` or `{"name":null}`.
    #[inline(always)]
    pub(crate) fn variant<T: Copy>(&mut self, names: &[(&str, T)]) -> Res<T> {
        let lookup = |s: &str| names.iter().find(|(n, _)| *n == s).map(|&(_, v)| v);
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                // Unescaped names first: a byte compare, no UTF-8 check.
                for &(name, v) in names {
                    let end = self.pos + name.len();
                    if self.bytes.get(self.pos..end) == Some(name.as_bytes())
                        && self.bytes.get(end) == Some(&b'"')
                    {
                        self.pos = end + 1;
                        return Ok(v);
                    }
                }
                let s = self.string()?;
                match lookup(&s) {
                    Some(v) => Ok(v),
                    None => self.fail("unknown variant"),
                }
            }
            Some(b'{') => {
                self.pos += 1;
                if self.peek() != Some(b'"') {
                    return self.fail("expected a variant name");
                }
                self.pos += 1;
                let s = self.string()?;
                let Some(v) = lookup(&s) else {
                    return self.fail("unknown variant");
                };
                self.colon()?;
                if !self.null()? {
                    return self.fail("expected null");
                }
                if self.peek() != Some(b'}') {
                    return self.fail("expected `}`");
                }
                self.pos += 1;
                Ok(v)
            }
            _ => self.fail("expected a variant"),
        }
    }

    /// Skips any value with `serde_json`'s rules for ignored values (see
    /// [`Reader::skip_string`]; numbers are checked for syntax only).
    /// Iterative, so deep nesting cannot overflow the stack.
    pub(crate) fn skip_value(&mut self) -> Res<()> {
        let mut open = Nesting::default();
        loop {
            // A value starts here.
            match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        open.push(true);
                        self.skip_key()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        open.push(false);
                        continue;
                    }
                }
                Some(b'"') => {
                    self.pos += 1;
                    self.skip_string()?;
                }
                Some(b'n') => {
                    self.pos += 1;
                    self.ident(b"ull")?;
                }
                Some(b't') => {
                    self.pos += 1;
                    self.ident(b"rue")?;
                }
                Some(b'f') => {
                    self.pos += 1;
                    self.ident(b"alse")?;
                }
                Some(b'-' | b'0'..=b'9') => self.skip_number()?,
                Some(_) => return self.fail("expected a value"),
                None => return self.fail("eof while parsing a value"),
            }
            // A value ended: close containers until one continues.
            loop {
                let Some(object) = open.top() else {
                    return Ok(());
                };
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    Some(b'}') if object => {
                        self.pos += 1;
                        open.pop();
                    }
                    Some(b']') if !object => {
                        self.pos += 1;
                        open.pop();
                    }
                    Some(_) => return self.fail("expected `,` or the end of a container"),
                    None => return self.fail("eof while parsing a container"),
                }
            }
        }
    }

    /// `"key":` of an ignored object.
    fn skip_key(&mut self) -> Res<()> {
        if self.peek() != Some(b'"') {
            return self.fail("expected a key");
        }
        self.pos += 1;
        self.skip_string()?;
        self.colon()
    }

    fn skip_number(&mut self) -> Res<()> {
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        self.int_digits()?;
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            let before = self.pos;
            while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if self.pos == before {
                return self.fail("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            let before = self.pos;
            while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if self.pos == before {
                return self.fail("invalid number");
            }
        }
        Ok(())
    }
}

/// A field name for [`read_struct`]'s key match: the name followed by its
/// closing quote as a little-endian 16-byte pattern (zero-padded).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    pattern: u128,
}

impl Key {
    /// A key for `name` (ASCII, at most 15 bytes, no quote, backslash or
    /// control character).
    ///
    /// # Panics
    ///
    /// At compile time (the tables are `const`) if `name` is too long or has
    /// a byte no unescaped key can hold.
    pub(crate) const fn new(name: &'static [u8]) -> Key {
        assert!(name.len() < 16, "field name too long for a key pattern");
        let mut pattern = 0u128;
        let mut i = 0;
        while i < name.len() {
            let b = name[i];
            assert!(
                b >= 0x20 && b < 0x80 && b != b'"' && b != b'\\',
                "field names are printable ascii without quotes or backslashes"
            );
            pattern |= (b as u128) << (8 * i);
            i += 1;
        }
        pattern |= (b'"' as u128) << (8 * i);
        Key { pattern }
    }
}

/// A struct's field names with a collision-free hash of their first eight
/// bytes (with the closing quote), for [`Reader::table_key`]: one probe per
/// key, whatever order the keys come in.
#[derive(Debug)]
pub(crate) struct KeyTable {
    keys: &'static [Key],
    mult: u64,
    /// Index into `keys` per hash slot; `u8::MAX` for none.
    slots: [u8; 128],
}

impl KeyTable {
    /// The table for `keys` (at most 64 names, distinct in their first eight
    /// bytes plus quote).
    ///
    /// # Panics
    ///
    /// At compile time (the tables are `const`) if no multiplier hashes the
    /// names without collisions.
    pub(crate) const fn new(keys: &'static [Key]) -> KeyTable {
        assert!(keys.len() <= 64, "too many field names for a key table");
        // Odd multipliers from a fixed sequence until one separates every
        // name (a few dozen tries for 22 names in 128 slots).
        let mut mult = 0x9E37_79B9_7F4A_7C15u64;
        let mut tries = 0;
        while tries < 100_000 {
            let mut slots = [u8::MAX; 128];
            let mut ok = true;
            let mut i = 0;
            while i < keys.len() {
                let h = (keys[i].pattern as u64).wrapping_mul(mult) >> 57;
                if slots[h as usize] != u8::MAX {
                    ok = false;
                    break;
                }
                slots[h as usize] = i as u8;
                i += 1;
            }
            if ok {
                return KeyTable { keys, mult, slots };
            }
            mult = mult
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407)
                | 1;
            tries += 1;
        }
        panic!("no collision-free hash for these field names");
    }

    /// The slot of a key's first eight bytes (with quote, zero-padded).
    #[inline]
    fn slot(&self, low: u64) -> usize {
        (low.wrapping_mul(self.mult) >> 57) as usize
    }
}

/// Open containers of an ignored value (true = object): a bit stack that
/// allocates only beyond 64 levels.
#[derive(Debug, Default)]
struct Nesting {
    depth: usize,
    bits: u64,
    deeper: Vec<bool>,
}

impl Nesting {
    fn push(&mut self, object: bool) {
        if self.depth < 64 {
            self.bits = self.bits & !(1 << self.depth) | (u64::from(object) << self.depth);
        } else {
            self.deeper.push(object);
        }
        self.depth += 1;
    }

    fn top(&self) -> Option<bool> {
        let d = self.depth.checked_sub(1)?;
        if d < 64 {
            Some(self.bits >> d & 1 == 1)
        } else {
            self.deeper.last().copied()
        }
    }

    fn pop(&mut self) {
        if self.depth > 64 {
            self.deeper.pop();
        }
        self.depth = self.depth.saturating_sub(1);
    }
}

/// Reads a struct written as an object (`lookup` maps a key to a field;
/// `None` is an unknown field, handled by `unknown`) or as an array of all
/// `order.len()` fields in order. `table` holds the key of each `order[i]`
/// at index `i`. `set(r, field, pending)` reads one field's value, starting
/// with [`Reader::value`]. A field named twice is an error (even if one of
/// them is `null`).
///
/// Keys are matched by one hash probe ([`Reader::table_key`]), so every key
/// order costs the same; only a miss (an escaped, unknown or malformed key)
/// scans the key and looks it up (no change in what is accepted: a hit is a
/// key without escapes equal to the name).
#[inline(always)]
pub(crate) fn read_struct<'a, F: Copy + PartialEq + Into<u32>>(
    r: &mut Reader<'a>,
    order: &[F],
    table: &KeyTable,
    lookup: impl Fn(&[u8]) -> Option<F>,
    mut unknown: impl FnMut(&mut Reader<'a>, &[u8]) -> Res<()>,
    mut set: impl FnMut(&mut Reader<'a>, F, bool) -> Res<()>,
) -> Res<()> {
    match r.peek() {
        Some(b'{') => {
            r.bump();
            let mut first = true;
            let mut seen = 0u64;
            while r.object_next(&mut first)? {
                let (field, pending) = match r.table_key(table).and_then(|k| order.get(k)) {
                    Some(&field) => (field, true),
                    None => {
                        let key = r.key()?;
                        r.colon()?;
                        let Some(field) = lookup(&key) else {
                            unknown(r, &key)?;
                            continue;
                        };
                        (field, false)
                    }
                };
                let bit = 1u64 << field.into();
                if seen & bit != 0 {
                    return Err(r.error("duplicate field"));
                }
                seen |= bit;
                set(r, field, pending)?;
            }
            Ok(())
        }
        Some(b'[') => {
            r.bump();
            let mut first = true;
            for &field in order {
                if !r.array_next(&mut first)? {
                    return Err(r.error("too few elements"));
                }
                set(r, field, false)?;
            }
            if r.peek() == Some(b']') {
                r.bump();
                Ok(())
            } else {
                Err(r.error("too many elements"))
            }
        }
        Some(_) => Err(r.error("expected an object")),
        None => Err(r.error("eof while parsing a value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Res<f64> {
        let mut r = Reader::new(s.as_bytes());
        let v = r.f64()?;
        r.end()?;
        Ok(v)
    }

    #[test]
    fn floats_are_correctly_rounded() {
        for s in [
            "0",
            "-0",
            "31.2304321",
            "121.47370119999999",
            "1e22",
            "1e23",
            "9007199254740993",
            "0.1",
            "2.2250738585072011e-308",
            "4.9e-324",
            "1e-400",
            "0e99999999999999999999",
            "1.7976931348623157e308",
            "123456789012345678901234567890",
            "0.000000000000000000000000000001234",
        ] {
            let want: f64 = s.parse().expect("std parses");
            let got = f(s).expect(s);
            assert_eq!(got.to_bits(), want.to_bits(), "{s}");
        }
        for s in [
            "1e309", "-1e400", "1.8e308", "01", "1.", ".5", "-", "1e", "1e+", "+1",
        ] {
            assert!(f(s).is_err(), "{s}");
        }
    }

    /// Digit runs of every length, across the eight-at-a-time boundary.
    #[test]
    fn digit_runs_of_every_length() {
        for len in 1..=25 {
            for pattern in ["1234567890", "9876543210", "9999999999", "1000000000"] {
                let digits: String = pattern.chars().cycle().take(len).collect();
                let u = Reader::new(digits.as_bytes()).u64();
                assert_eq!(u.ok(), digits.parse::<u64>().ok(), "{digits}");
                for text in [
                    digits.clone(),
                    format!("-{digits}"),
                    format!("0.{digits}"),
                    format!("{digits}.{digits}"),
                    format!("{digits}e-{}", len % 30),
                ] {
                    let want: f64 = text.parse().expect("std parses");
                    assert_eq!(f(&text).map(f64::to_bits), Ok(want.to_bits()), "{text}");
                }
            }
        }
        // Non-digits inside a run of eight end it.
        for text in ["12345678:", "1234567/9", "1234:678", "12\u{ff}45678"] {
            let mut r = Reader::new(text.as_bytes());
            let (n, _) = r.digits();
            assert_eq!(
                n,
                text.find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(text.len())
            );
        }
    }

    #[test]
    fn integers_follow_serde_json() {
        let i = |s: &str| Reader::new(s.as_bytes()).i64();
        assert_eq!(i("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(i("9223372036854775807"), Ok(i64::MAX));
        assert!(i("9223372036854775808").is_err());
        assert!(i("-0").is_err());
        assert!(i("1.0").is_err());
        assert!(i("1e3").is_err());
        let u = |s: &str| Reader::new(s.as_bytes()).u64();
        assert_eq!(u("18446744073709551615"), Ok(u64::MAX));
        assert!(u("18446744073709551616").is_err());
        assert!(u("-1").is_err());
        assert_eq!(u("0"), Ok(0));
    }

    #[test]
    fn strings_decode_escapes_and_reject_lone_surrogates() {
        let s = |s: &str| {
            let mut r = Reader::new(s.as_bytes());
            r.text().map(Cow::into_owned)
        };
        assert_eq!(
            s(r#""a\"\\\/\b\f\n\r\t""#).as_deref(),
            Ok("a\"\\/\u{8}\u{c}\n\r\t")
        );
        assert_eq!(s(r#""\u00e9\ud83d\ude00""#).as_deref(), Ok("é😀"));
        assert!(s(r#""\ud83d""#).is_err());
        assert!(s(r#""\ude00""#).is_err());
        assert!(s(r#""\ud83d\u0041""#).is_err());
        assert!(s("\"a\u{1}\"").is_err());
        assert!(s(r#""\x""#).is_err());
        assert!(Reader::new(b"\"\xff\"").text().is_err());
    }

    const NAMES: [Key; 5] = [
        Key::new(b"lat"),
        Key::new(b"lon"),
        Key::new(b"accuracy_m"),
        Key::new(b"altitude_m"),
        Key::new(b"abcdefghijklmno"),
    ];
    const TABLE: KeyTable = KeyTable::new(&NAMES);

    /// A hit is exactly an unescaped name and its quote; a hit or a miss
    /// consumes nothing (a miss is read by `key`, a hit by `value`).
    #[test]
    fn table_key_hits_exact_names_only() {
        let probe = |s: &[u8]| {
            let mut r = Reader::new(s);
            let hit = r.table_key(&TABLE);
            assert_eq!(r.pos, 0);
            hit
        };
        let pad = b" : 1 ,              ";
        for (i, name) in ["lat", "lon", "accuracy_m", "altitude_m", "abcdefghijklmno"]
            .iter()
            .enumerate()
        {
            let doc = [name.as_bytes(), b"\"", pad].concat();
            assert_eq!(probe(&doc), Some(i), "{name}");
            let mut r = Reader::new(&doc);
            assert_eq!(r.value(true, name.len()), Ok(true));
            assert_eq!(r.u64(), Ok(1));
            let null = [name.as_bytes(), b"\":null"].concat();
            let mut r = Reader::new(&null);
            assert_eq!(
                r.value(true, name.len()).and_then(|v| r.end().map(|()| v)),
                Ok(false)
            );
            // Too near the end for the 16-byte load: left to `key` (a
            // 15-byte name and its quote fill the load exactly).
            let short = [name.as_bytes(), b"\""].concat();
            let want = (short.len() == 16).then_some(i);
            assert_eq!(probe(&short), want, "{name}");
        }
        for miss in [
            &b"la\"             "[..],
            b"lat_\"            ",
            b"latt\"            ",
            b"Lat\"             ",
            b"l\\u0061t\"        ",
            b"lat\\\"\"          ",
            b"lat\x01\"           ",
            b"\"               ",
            b"abcdefghijklmnop\"",
            b"abcdefghijklmno ",
            b"accuracy_n\"      ",
        ] {
            assert_eq!(probe(miss), None, "{}", String::from_utf8_lossy(miss));
        }
    }

    #[test]
    fn skip_value_is_iterative_and_checks_syntax() {
        let skip = |s: &[u8]| {
            let mut r = Reader::new(s);
            r.skip_value().and_then(|()| r.end())
        };
        let deep = [vec![b'['; 100_000], vec![b']'; 100_000]].concat();
        assert_eq!(skip(&deep), Ok(()));
        let deep_obj = [b"{\"a\":".repeat(100), b"1".to_vec(), b"}".repeat(100)].concat();
        assert_eq!(skip(&deep_obj), Ok(()));
        assert_eq!(skip(b"{\"\xff\\ud800\":[1e999,-0.5,true,null,{}]}"), Ok(()));
        for bad in [
            &b"[1,]"[..],
            b"{\"a\":1,}",
            b"[}",
            b"{1:2}",
            b"[",
            b"nul",
            b"\"\x01\"",
        ] {
            assert!(skip(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
