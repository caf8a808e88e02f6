//! A tracker's window of judged fixes, stored compactly and losslessly.
//!
//! A full 6 h window at one fix a minute holds about 400 entries; held as
//! plain structs (64 bytes each) it was most of a subject's memory. Here
//! entries are kept in blocks: the first entry of a block is encoded on its
//! own, each next one as its difference from the one before (time step,
//! coordinate steps at 1e-7°, and flags for what repeats: the next sequence
//! number, the same verdicts, the same accuracy), a step of whole seconds
//! in seconds. A fix reported every minute while walking takes about 9
//! bytes.
//!
//! Lossless for every input: coordinates are kept as steps at 1e-7° only
//! when that gives back the very same `f64` (true for anything decoded from
//! the wire, which carries 1e-7° integers, or any decimal with at most seven
//! places); accuracy likewise in decimetres of an `f32` (the wire's form);
//! time as milliseconds plus the rest of its nanoseconds when it has any.
//! Anything else is stored raw. `tests` check the round trip bit for bit.
//!
//! Pushes fill the open block, a fixed buffer that is sealed when the next
//! entry does not fit: pushes never grow or move a block, which in the
//! steady state was most of the cost. Sealed blocks are found by the key of
//! their last entry, so a search decodes at most one block. The tracker
//! changes an entry only to set its confidence on a replay, a flag bit set
//! in place. Inserting a late fix re-encodes the entry after it (its bytes
//! are relative to the one before), or splits a full block in two;
//! dropping the front of a block re-encodes the new first entry; all other
//! bytes stay as they are.

use std::collections::VecDeque;

use chrono::{DateTime, Timelike, Utc};

use crate::fix::{Fix, Source};
use crate::judge::Verdicts;

/// Most entries in one block: its count fits a byte, and finding an entry
/// decodes at most this many.
const BLOCK: usize = 64;
/// Room for the longest encoded entry, which takes at most 66 bytes: flags
/// 2, time step 10, sequence step 10, verdicts 5, raw accuracy 8, raw
/// coordinates 16, raw time 15.
const MAX_ENTRY_BYTES: usize = 96;
/// The open block's buffer: it is sealed when the next entry does not
/// fit (or it holds [`BLOCK`]), so pushes never grow or move a block;
/// about 56 fixes of 9 bytes, and at most one entry's bytes unused once
/// sealed.
const OPEN_BYTES: usize = 512;
/// Unused bytes a sealed block gives back (smaller tails are not worth a
/// `realloc`).
const SHRINK_ABOVE: usize = 32;

/// One judged fix, as the tracker works with it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub fix: Fix,
    /// `fix.time` in milliseconds: the window's sort key with `device_seq`.
    pub t: i64,
    pub verdicts: Verdicts,
    /// Confident source and plausible speed (recomputed on replay).
    pub confident: bool,
}

impl Entry {
    pub fn key(&self) -> (i64, u64) {
        (self.t, self.fix.device_seq)
    }
}

/// The part of a time that its milliseconds `t` do not hold.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rest {
    None,
    /// Nanoseconds past the millisecond.
    SubMilli(u32),
    /// The whole time, when `t` cannot give it back (chrono's leap second,
    /// nanoseconds ≥ 1e9; see [`raw_time`]).
    Raw {
        secs: i64,
        nanos: u32,
    },
}

/// An entry's stored fields. Only converting to and from [`Entry`] touches
/// `chrono` (building a date costs more than decoding an entry), so scans
/// by key and re-encoding never do.
#[derive(Debug, Clone, Copy)]
struct Fields {
    t: i64,
    rest: Rest,
    lat: f64,
    lon: f64,
    accuracy: f64,
    seq: u64,
    verdicts: u32,
    source: Source,
    confident: bool,
}

impl Fields {
    fn of(e: &Entry) -> Self {
        let time = e.fix.time;
        debug_assert_eq!(e.t, time.timestamp_millis(), "t is the fix's time");
        let nanos = time.timestamp_subsec_nanos();
        // Below 1e9 nanoseconds, `t` holds the seconds and milliseconds.
        let rest = match nanos {
            1_000_000_000.. => Rest::Raw {
                secs: time.timestamp(),
                nanos,
            },
            _ if !nanos.is_multiple_of(1_000_000) => Rest::SubMilli(nanos % 1_000_000),
            _ => Rest::None,
        };
        Self {
            t: e.t,
            rest,
            lat: e.fix.lat,
            lon: e.fix.lon,
            accuracy: e.fix.accuracy_m,
            seq: e.fix.device_seq,
            verdicts: e.verdicts.0,
            source: e.fix.source,
            confident: e.confident,
        }
    }

    fn key(&self) -> (i64, u64) {
        (self.t, self.seq)
    }

    fn entry(&self) -> Entry {
        let time = match self.rest {
            Rest::Raw { secs, nanos } => raw_time(secs, nanos),
            Rest::SubMilli(n) => time_of(self.t, n),
            Rest::None => time_of(self.t, 0),
        };
        Entry {
            fix: Fix {
                time: time.expect("stored from a valid time"),
                lat: self.lat,
                lon: self.lon,
                accuracy_m: self.accuracy,
                source: self.source,
                device_seq: self.seq,
            },
            t: self.t,
            verdicts: Verdicts(self.verdicts),
            confident: self.confident,
        }
    }
}

/// The time with `secs` (Unix) and `nanos` (≥ 1e9 in a leap second).
/// chrono builds a leap second only at :59 but holds one at any second
/// (`with_second` keeps it), so such a time is built at :59 and moved.
fn raw_time(secs: i64, nanos: u32) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, nanos).or_else(|| {
        let second = secs.rem_euclid(60);
        DateTime::from_timestamp(secs - second + 59, nanos)?.with_second(second as u32)
    })
}

/// `t`'s time plus `sub_milli` nanoseconds.
fn time_of(t: i64, sub_milli: u32) -> Option<DateTime<Utc>> {
    let nanos = (t.rem_euclid(1000) as u32) * 1_000_000 + sub_milli;
    DateTime::from_timestamp(t.div_euclid(1000), nanos)
}

/// The running state of a block's encoding: the values of its last entry
/// (all zero before the first), which the next entry is encoded against,
/// and how many entries it has. The values are a function of that one
/// entry alone, so an entry's bytes stay valid as long as the entry before
/// it is the same. 40 bytes; with the open block's buffer, 64.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
struct State {
    t: i64,
    seq: u64,
    accuracy: u64,
    lat_q: i32,
    lon_q: i32,
    verdicts: u32,
    count: u8,
}

// The head byte of an encoded entry.
const SOURCE_MASK: u8 = 0b11;
const NEXT_SEQ: u8 = 1 << 2;
const SAME_VERDICTS: u8 = 1 << 3;
const SAME_ACCURACY: u8 = 1 << 4;
/// A second byte of rarely set flags follows.
const RARE: u8 = 1 << 5;
/// The entry is confident: the one thing a replay changes, so a bit that
/// can be set in place.
const CONFIDENT: u8 = 1 << 6;
/// The time step is a whole number of seconds and is written in seconds:
/// GNSS receivers fix on the second, so a device reporting every minute
/// steps 60 s, one byte instead of the three that 60,000 ms take.
const STEP_SECONDS: u8 = 1 << 7;
// The rare byte.
const RAW_POSITION: u8 = 1 << 0;
const RAW_ACCURACY: u8 = 1 << 1;
const RAW_TIME: u8 = 1 << 2;
const SUB_MILLI: u8 = 1 << 3;

fn source_bits(s: Source) -> u8 {
    match s {
        Source::Gnss => 0,
        Source::Wifi => 1,
        Source::Cell => 2,
        Source::Fused => 3,
    }
}

fn source_of(bits: u8) -> Source {
    match bits & SOURCE_MASK {
        0 => Source::Gnss,
        1 => Source::Wifi,
        2 => Source::Cell,
        _ => Source::Fused,
    }
}

/// Degrees at 1e-7° (fits an `i32` for any valid coordinate), and whether
/// that is exactly `deg` again.
fn quantize_deg(deg: f64) -> (i32, bool) {
    // Rounds half away from zero without a libm call (no SSE4.1 in the
    // baseline target); only which integer is found matters, and the
    // check tells whether it gives `deg` back.
    let x = deg * 1e7;
    let q = (x + 0.5f64.copysign(x)) as i64;
    let exact = i32::try_from(q).is_ok() && (q as f64 / 1e7).to_bits() == deg.to_bits();
    (q as i32, exact)
}

/// Accuracy in decimetres of an `f32` (the wire's form), if that gives
/// back exactly `m`.
fn quantize_accuracy(m: f64) -> Option<u64> {
    let q = m * 10.0 + 0.5;
    if !(0.0..f64::from(u32::MAX)).contains(&q) {
        return None;
    }
    let q = q as u32;
    (f64::from(q as f32 / 10.0).to_bits() == m.to_bits()).then_some(u64::from(q))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// One encoded entry, built on the stack and then copied where it goes in
/// one piece.
struct Encoded {
    bytes: [u8; MAX_ENTRY_BYTES],
    len: usize,
}

impl Encoded {
    fn push(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.push(v as u8);
    }

    fn u64(&mut self, v: u64) {
        self.bytes[self.len..self.len + 8].copy_from_slice(&v.to_le_bytes());
        self.len += 8;
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// `f` encoded against `prev`, and the state after it.
fn encode(prev: &State, f: &Fields) -> (Encoded, State) {
    let mut out = Encoded {
        bytes: [0; MAX_ENTRY_BYTES],
        len: 0,
    };
    let ((lat_q, lat_exact), (lon_q, lon_exact)) = (quantize_deg(f.lat), quantize_deg(f.lon));
    let next = State {
        t: f.t,
        seq: f.seq,
        accuracy: f.accuracy.to_bits(),
        lat_q,
        lon_q,
        verdicts: f.verdicts,
        count: prev.count + 1,
    };
    let mut head = source_bits(f.source);
    let mut rare = 0;
    if f.confident {
        head |= CONFIDENT;
    }
    if next.seq == prev.seq.wrapping_add(1) {
        head |= NEXT_SEQ;
    }
    if next.verdicts == prev.verdicts {
        head |= SAME_VERDICTS;
    }
    let decimetres = if next.accuracy == prev.accuracy {
        head |= SAME_ACCURACY;
        None
    } else {
        let q = quantize_accuracy(f.accuracy);
        if q.is_none() {
            rare |= RAW_ACCURACY;
        }
        q
    };
    if !(lat_exact && lon_exact) {
        rare |= RAW_POSITION;
    }
    match f.rest {
        Rest::None => {}
        Rest::SubMilli(_) => rare |= SUB_MILLI,
        Rest::Raw { .. } => rare |= RAW_TIME,
    }
    if rare != 0 {
        head |= RARE;
    }
    let step = next.t.wrapping_sub(prev.t);
    let step = if step % 1000 == 0 {
        head |= STEP_SECONDS;
        step / 1000
    } else {
        step
    };
    out.push(head);
    if rare != 0 {
        out.push(rare);
    }
    out.varint(zigzag(step));
    if head & NEXT_SEQ == 0 {
        out.varint(zigzag(next.seq.wrapping_sub(prev.seq) as i64));
    }
    if head & SAME_VERDICTS == 0 {
        out.varint(u64::from(next.verdicts));
    }
    if head & SAME_ACCURACY == 0 {
        match decimetres {
            Some(q) => out.varint(q),
            None => out.u64(next.accuracy),
        }
    }
    if rare & RAW_POSITION != 0 {
        out.u64(f.lat.to_bits());
        out.u64(f.lon.to_bits());
    } else {
        out.varint(zigzag(i64::from(lat_q) - i64::from(prev.lat_q)));
        out.varint(zigzag(i64::from(lon_q) - i64::from(prev.lon_q)));
    }
    match f.rest {
        Rest::None => {}
        Rest::SubMilli(n) => out.varint(u64::from(n)),
        Rest::Raw { secs, nanos } => {
            out.varint(zigzag(secs));
            out.varint(u64::from(nanos));
        }
    }
    (out, next)
}

/// Reads what [`encode`] wrote; the bytes are always the window's own.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.bytes[self.at];
        self.at += 1;
        b
    }

    fn varint(&mut self) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = self.byte();
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return v;
            }
            shift += 7;
        }
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0; 8];
        b.copy_from_slice(&self.bytes[self.at..self.at + 8]);
        self.at += 8;
        u64::from_le_bytes(b)
    }

    /// Reads one entry encoded against `prev`.
    fn decode(&mut self, prev: &State) -> (Fields, State) {
        let head = self.byte();
        let rare = if head & RARE != 0 { self.byte() } else { 0 };
        let step = unzigzag(self.varint());
        let t = prev.t.wrapping_add(if head & STEP_SECONDS != 0 {
            step.wrapping_mul(1000)
        } else {
            step
        });
        let seq = if head & NEXT_SEQ != 0 {
            prev.seq.wrapping_add(1)
        } else {
            prev.seq.wrapping_add(unzigzag(self.varint()) as u64)
        };
        let verdicts = if head & SAME_VERDICTS != 0 {
            prev.verdicts
        } else {
            self.varint() as u32
        };
        let accuracy = if head & SAME_ACCURACY != 0 {
            prev.accuracy
        } else if rare & RAW_ACCURACY != 0 {
            self.u64()
        } else {
            f64::from(self.varint() as u32 as f32 / 10.0).to_bits()
        };
        let (lat, lon, lat_q, lon_q);
        if rare & RAW_POSITION != 0 {
            (lat, lon) = (f64::from_bits(self.u64()), f64::from_bits(self.u64()));
            (lat_q, lon_q) = (quantize_deg(lat).0, quantize_deg(lon).0);
        } else {
            lat_q = (i64::from(prev.lat_q) + unzigzag(self.varint())) as i32;
            lon_q = (i64::from(prev.lon_q) + unzigzag(self.varint())) as i32;
            (lat, lon) = (f64::from(lat_q) / 1e7, f64::from(lon_q) / 1e7);
        }
        let rest = if rare & RAW_TIME != 0 {
            let secs = unzigzag(self.varint());
            let nanos = self.varint() as u32;
            Rest::Raw { secs, nanos }
        } else if rare & SUB_MILLI != 0 {
            Rest::SubMilli(self.varint() as u32)
        } else {
            Rest::None
        };
        let fields = Fields {
            t,
            rest,
            lat,
            lon,
            accuracy: f64::from_bits(accuracy),
            seq,
            verdicts,
            source: source_of(head),
            confident: head & CONFIDENT != 0,
        };
        let state = State {
            t,
            seq,
            accuracy,
            lat_q,
            lon_q,
            verdicts,
            count: prev.count + 1,
        };
        (fields, state)
    }
}

/// A block's entries in order, decoded to fields (no `chrono`), each with
/// the offset of its first byte.
struct BlockFields<'a> {
    r: Reader<'a>,
    state: State,
    len: usize,
}

impl<'a> BlockFields<'a> {
    fn new(bytes: &'a [u8], len: usize) -> Self {
        Self {
            r: Reader { bytes, at: 0 },
            state: State::default(),
            len,
        }
    }
}

impl Iterator for BlockFields<'_> {
    type Item = (usize, Fields);

    fn next(&mut self) -> Option<(usize, Fields)> {
        if usize::from(self.state.count) == self.len {
            return None;
        }
        let at = self.r.at;
        let (f, state) = self.r.decode(&self.state);
        self.state = state;
        Some((at, f))
    }
}

/// `entries` (1 to [`BLOCK`]) as one block's bytes, and the state after
/// the last.
fn encode_block(entries: &[Fields]) -> (Vec<u8>, State) {
    debug_assert!(!entries.is_empty() && entries.len() <= BLOCK);
    let mut bytes = Vec::new();
    let mut state = State::default();
    for f in entries {
        let (e, next) = encode(&state, f);
        bytes.extend_from_slice(e.as_slice());
        state = next;
    }
    bytes.shrink_to_fit();
    (bytes, state)
}

/// Drops a block's entries before the one that starts at byte `at`
/// (encoded against `before`): that one is re-encoded on its own, the
/// bytes after it are kept as they are.
fn drop_front(bytes: &mut Vec<u8>, at: usize, before: &State) {
    let mut r = Reader { bytes, at };
    let (first, _) = r.decode(before);
    let end = r.at;
    let (e, _) = encode(&State::default(), &first);
    bytes.splice(..end, e.as_slice().iter().copied());
}

/// Inserts `new` before the entry that starts at byte `at` (encoded
/// against `before`): the entries after it keep their bytes but for that
/// one, re-encoded against `new`.
fn insert_at(bytes: &mut Vec<u8>, at: usize, before: &State, new: &Fields) {
    let mut r = Reader { bytes, at };
    let (old, _) = r.decode(before);
    let end = r.at;
    let (new, state) = encode(before, new);
    let (old, _) = encode(&state, &old);
    let both = new.as_slice().iter().chain(old.as_slice());
    bytes.splice(at..end, both.copied());
}

/// Inserts `new` at index `j` (`j < len`) of a block of `len` entries
/// that has room for one more.
fn insert_in_place(bytes: &mut Vec<u8>, len: usize, j: usize, new: &Fields) {
    let mut read = BlockFields::new(bytes, len);
    read.by_ref().take(j).for_each(drop);
    let (at, before) = (read.r.at, read.state);
    insert_at(bytes, at, &before, new);
}

/// A full block's entries with `new` inserted at index `j`, in two halves.
fn split_with(bytes: &[u8], len: usize, j: usize, new: Fields) -> (Vec<Fields>, Vec<Fields>) {
    let mut front: Vec<Fields> = BlockFields::new(bytes, len).map(|(_, f)| f).collect();
    front.insert(j, new);
    let back = front.split_off(front.len() / 2);
    (front, back)
}

/// Up to [`BLOCK`] consecutive entries, before the open block.
#[derive(Debug)]
struct Block {
    /// Key of the last entry: blocks are searched by it.
    last: (i64, u64),
    bytes: Vec<u8>,
    len: u8,
}

impl Block {
    fn of(entries: &[Fields]) -> Self {
        let (bytes, state) = encode_block(entries);
        Self {
            last: (state.t, state.seq),
            bytes,
            len: state.count,
        }
    }

    fn len(&self) -> usize {
        usize::from(self.len)
    }

    fn fields(&self) -> BlockFields<'_> {
        BlockFields::new(&self.bytes, self.len())
    }
}

/// The window: entries sorted by key `(t, device_seq)`, addressed by index.
///
/// Blocks are `sealed` (oldest first) then the open block, which pushes go
/// to, is not empty while the window is not, and is not in `sealed`: its
/// buffer and state are the window's first 64 bytes, so a push touches
/// them and the end of the buffer, nothing else (with many subjects taking
/// turns, each line touched is a miss).
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct Window {
    open: Vec<u8>,
    /// The open block's state: its last entry's values (the window's last
    /// key) and its count.
    tail: State,
    sealed: VecDeque<Block>,
    /// Entries in `sealed`.
    sealed_len: usize,
}

impl Window {
    pub fn len(&self) -> usize {
        self.sealed_len + self.open_len()
    }

    fn open_len(&self) -> usize {
        usize::from(self.tail.count)
    }

    /// The key of the last entry.
    pub fn last_key(&self) -> Option<(i64, u64)> {
        (self.tail.count > 0).then_some((self.tail.t, self.tail.seq))
    }

    /// Appends an entry after every other (the caller keeps the order).
    pub fn push(&mut self, e: &Entry) {
        debug_assert!(self.last_key().is_none_or(|k| k < e.key()), "in order");
        let f = Fields::of(e);
        let (mut encoded, mut tail) = encode(&self.tail, &f);
        let room = self.open.capacity() - self.open.len();
        if self.open_len() == BLOCK || room < encoded.len {
            if self.open_len() > 0 {
                self.seal();
            }
            (encoded, tail) = encode(&self.tail, &f);
            self.open = Vec::with_capacity(OPEN_BYTES.max(encoded.len));
        }
        self.open.extend_from_slice(encoded.as_slice());
        self.tail = tail;
    }

    fn seal(&mut self) {
        let mut bytes = std::mem::take(&mut self.open);
        if bytes.capacity() - bytes.len() > SHRINK_ABOVE {
            bytes.shrink_to_fit();
        }
        let block = Block {
            last: (self.tail.t, self.tail.seq),
            bytes,
            len: self.tail.count,
        };
        self.sealed_len += block.len();
        self.tail = State::default();
        make_room(&mut self.sealed);
        self.sealed.push_back(block);
    }

    /// Every block's bytes and length, oldest first.
    fn blocks(&self) -> impl Iterator<Item = (&[u8], usize)> {
        let sealed = self.sealed.iter().map(|b| (&b.bytes[..], b.len()));
        sealed.chain(std::iter::once((&self.open[..], self.open_len())))
    }

    /// The block holding index `i` (`i < len`; `sealed.len()` for the open
    /// block) and the index of its first entry.
    fn block_of(&self, i: usize) -> (usize, usize) {
        if i >= self.sealed_len {
            return (self.sealed.len(), self.sealed_len);
        }
        let mut start = 0;
        for (b, block) in self.sealed.iter().enumerate() {
            if i < start + block.len() {
                return (b, start);
            }
            start += block.len();
        }
        unreachable!("index {i} out of bounds ({})", self.len())
    }

    fn block_fields(&self, b: usize) -> BlockFields<'_> {
        match self.sealed.get(b) {
            Some(block) => block.fields(),
            None => BlockFields::new(&self.open, self.open_len()),
        }
    }

    /// The first index whose key `(t, device_seq)` fails `pred`, which must
    /// hold for a prefix of the window (like [`slice::partition_point`]),
    /// and the key before it.
    pub fn partition_point(
        &self,
        mut pred: impl FnMut((i64, u64)) -> bool,
    ) -> (usize, Option<(i64, u64)>) {
        let b = self.sealed.partition_point(|block| pred(block.last));
        let (start, mut before) = match b.checked_sub(1) {
            Some(p) => {
                let start = self.sealed.range(..b).map(Block::len).sum();
                (start, Some(self.sealed[p].last))
            }
            None => (0, None),
        };
        let mut n = 0;
        for (_, f) in self.block_fields(b) {
            if !pred(f.key()) {
                break;
            }
            (n, before) = (n + 1, Some(f.key()));
        }
        (start + n, before)
    }

    /// The key of the entry at index `i`.
    pub fn key_at(&self, i: usize) -> Option<(i64, u64)> {
        if i >= self.len() {
            return None;
        }
        let (b, start) = self.block_of(i);
        self.block_fields(b).nth(i - start).map(|(_, f)| f.key())
    }

    /// Entries from index `i` on, decoded.
    pub fn iter_from(&self, i: usize) -> impl Iterator<Item = Entry> + '_ {
        let (b, start) = if i < self.len() {
            self.block_of(i)
        } else {
            (self.sealed.len() + 1, i)
        };
        let fields = self.blocks().skip(b);
        let fields = fields.flat_map(|(bytes, len)| BlockFields::new(bytes, len));
        fields.skip(i - start).map(|(_, f)| f.entry())
    }

    /// Inserts an entry at index `i`, where it belongs in key order. The
    /// entries after it in its block keep their bytes but for the next
    /// one, which is re-encoded against the new entry.
    pub fn insert(&mut self, i: usize, e: &Entry) {
        if i >= self.len() {
            return self.push(e);
        }
        let (b, start) = self.block_of(i);
        let j = i - start;
        let new = Fields::of(e);
        let Some(block) = self.sealed.get_mut(b) else {
            return self.insert_open(j, &new);
        };
        self.sealed_len += 1;
        if block.len() == BLOCK {
            let (front, back) = split_with(&block.bytes, block.len(), j, new);
            *block = Block::of(&back);
            make_room(&mut self.sealed);
            self.sealed.insert(b, Block::of(&front));
            return;
        }
        let len = block.len();
        insert_in_place(&mut block.bytes, len, j, &new);
        block.bytes.shrink_to_fit();
        block.len += 1;
    }

    /// [`Window::insert`] at index `j` of the open block.
    fn insert_open(&mut self, j: usize, new: &Fields) {
        if self.open_len() == BLOCK {
            // The front half is sealed.
            let (front, back) = split_with(&self.open, self.open_len(), j, *new);
            let front = Block::of(&front);
            (self.open, self.tail) = encode_block(&back);
            // Room for pushes again, or the next one would seal it.
            self.open
                .reserve_exact(OPEN_BYTES.saturating_sub(self.open.len()));
            self.sealed_len += front.len();
            make_room(&mut self.sealed);
            self.sealed.push_back(front);
            return;
        }
        let len = self.open_len();
        insert_in_place(&mut self.open, len, j, new);
        // The last entry is the same: only the count changes.
        self.tail.count += 1;
    }

    /// Calls `f` on every entry in order; `f` may change only confidence,
    /// which is set in place.
    pub fn replay(&mut self, mut f: impl FnMut(&mut Entry)) {
        let open_len = self.open_len();
        let sealed = self.sealed.iter_mut().map(|b| {
            let len = b.len();
            (&mut b.bytes, len)
        });
        for (bytes, len) in sealed.chain(std::iter::once((&mut self.open, open_len))) {
            // Offsets of the head bytes to flip (a block is far below
            // 64 KiB), applied once the block's bytes are no longer read.
            let (mut flips, mut n) = ([0u16; BLOCK], 0);
            for (at, fields) in BlockFields::new(bytes, len) {
                let mut e = fields.entry();
                f(&mut e);
                debug_assert_eq!(e.key(), fields.key(), "a replay changes only confidence");
                if e.confident != fields.confident {
                    flips[n] = at as u16;
                    n += 1;
                }
            }
            for &at in &flips[..n] {
                bytes[usize::from(at)] ^= CONFIDENT;
            }
        }
    }

    /// Removes the first `n` entries, calling `f` on each in order.
    pub fn drain_front(&mut self, n: usize, mut f: impl FnMut(&mut Entry)) {
        let mut left = n.min(self.len());
        while left > 0 {
            let open_len = self.open_len();
            let (bytes, len) = match self.sealed.front_mut() {
                Some(block) => {
                    let len = block.len();
                    (&mut block.bytes, len)
                }
                None => (&mut self.open, open_len),
            };
            let k = left.min(len);
            let mut read = BlockFields::new(bytes, len);
            for (_, fields) in read.by_ref().take(k) {
                f(&mut fields.entry());
            }
            let (at, before) = (read.r.at, read.state);
            left -= k;
            if k < len {
                drop_front(bytes, at, &before);
            }
            match self.sealed.front_mut() {
                Some(block) if k < len => {
                    block.len -= k as u8;
                    self.sealed_len -= k;
                }
                Some(_) => {
                    self.sealed.pop_front();
                    self.sealed_len -= k;
                }
                // The last entry stays: only the count changes.
                None if k < len => self.tail.count -= k as u8,
                None => (self.open, self.tail) = (Vec::new(), State::default()),
            }
        }
    }

    /// Heap bytes held (for tests and memory reports).
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.sealed.capacity() * size_of::<Block>()
            + self
                .sealed
                .iter()
                .map(|b| b.bytes.capacity())
                .sum::<usize>()
            + self.open.capacity()
    }

    /// Blocks, the open one included (tests).
    #[cfg(test)]
    fn block_count(&self) -> usize {
        self.sealed.len() + 1
    }
}

/// Grows a full buffer by an eighth instead of letting it double: a window
/// slides at a steady length, and doubling would leave up to half of it
/// unused for good.
fn make_room<T>(v: &mut VecDeque<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 8).max(2));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use chrono::{DateTime, Timelike, Utc};

    use super::{BLOCK, Entry, Fields, Reader, Rest, State, Window, encode};
    use crate::fix::{Fix, Source};
    use crate::judge::Verdicts;
    use crate::test_rng::Rng;

    /// Every field, floats as bits: equal means the same entry exactly.
    type Bits = (DateTime<Utc>, u64, u64, u64, Source, u64, i64, u32, bool);

    fn bits(e: &Entry) -> Bits {
        let f = &e.fix;
        (
            f.time,
            f.lat.to_bits(),
            f.lon.to_bits(),
            f.accuracy_m.to_bits(),
            f.source,
            f.device_seq,
            e.t,
            e.verdicts.0,
            e.confident,
        )
    }

    fn all(w: &Window) -> Vec<Bits> {
        w.iter_from(0).map(|e| bits(&e)).collect()
    }

    /// A time at or after `ms`: whole milliseconds mostly, sometimes with
    /// nanoseconds, now and then a leap second.
    fn time(rng: &mut Rng, ms: i64) -> DateTime<Utc> {
        let base = DateTime::from_timestamp_millis(ms).expect("in range");
        match rng.below(20) {
            0 => {
                let nanos = base.timestamp_subsec_nanos() + rng.below(1_000_000) as u32;
                DateTime::from_timestamp(base.timestamp(), nanos).expect("in range")
            }
            1 => {
                // 23:59:60.5 (chrono's leap second) of the day before.
                let secs = ms.div_euclid(86_400_000) * 86_400 - 1;
                DateTime::from_timestamp(secs, 1_500_000_000).unwrap_or(base)
            }
            2 => {
                // A leap second at another second of its minute, which
                // chrono holds (`with_second`) but builds only at :59.
                let at59 = base.timestamp() - base.timestamp().rem_euclid(60) + 59;
                DateTime::from_timestamp(at59, 1_500_000_000)
                    .and_then(|t| t.with_second(base.second()))
                    .unwrap_or(base)
            }
            _ => base,
        }
    }

    /// A coordinate near `prev`: mostly as the wire carries it (1e-7°),
    /// sometimes any `f64`, now and then an edge.
    fn coord(rng: &mut Rng, prev: f64, limit: f64) -> f64 {
        let v = match rng.below(20) {
            0 => prev + rng.range(0.0, 0.01),
            1 => [0.0, -0.0, limit, -limit, 1e-300][rng.below(5) as usize],
            _ => ((prev * 1e7).round() + rng.below(20_001) as f64 - 10_000.0) / 1e7,
        };
        v.clamp(-limit, limit)
    }

    fn accuracy(rng: &mut Rng, prev: f64) -> f64 {
        match rng.below(10) {
            0..=3 => prev,
            4 => [0.0, -0.0, 0.1, 12.34, 1e9, 65535.0][rng.below(6) as usize],
            5 => rng.range(0.0, 500.0),
            _ => f64::from(rng.below(3000) as u16 as f32 / 10.0),
        }
    }

    fn entry(rng: &mut Rng, ms: i64, seq: u64, prev: Option<&Entry>) -> Entry {
        let time = time(rng, ms);
        let (lat, lon, acc, verdicts) = prev.map_or((39.9, 116.4, 5.0, 0), |p| {
            (p.fix.lat, p.fix.lon, p.fix.accuracy_m, p.verdicts.0)
        });
        let source =
            [Source::Gnss, Source::Wifi, Source::Cell, Source::Fused][rng.below(4) as usize];
        Entry {
            fix: Fix {
                time,
                lat: coord(rng, lat, 90.0),
                lon: coord(rng, lon, 180.0),
                accuracy_m: accuracy(rng, acc),
                source,
                device_seq: seq,
            },
            t: time.timestamp_millis(),
            verdicts: Verdicts(if rng.chance(80) {
                verdicts
            } else {
                rng.next_u64() as u32
            }),
            confident: rng.chance(50),
        }
    }

    /// A step of whole seconds is written in seconds: a fix a minute after
    /// the one before takes one byte for its time instead of three, and
    /// every step, whole or not, either sign, reads back as written.
    #[test]
    fn a_step_of_whole_seconds_takes_one_byte() {
        let at = |t: i64| Fields {
            t,
            rest: Rest::None,
            lat: 39.9,
            lon: 116.4,
            accuracy: 5.0,
            seq: 7,
            verdicts: 0,
            source: Source::Gnss,
            confident: false,
        };
        let t0: i64 = 1_748_779_200_000;
        let (_, first) = encode(&State::default(), &at(t0));
        let encoded = |t: i64| encode(&first, &at(t)).0;
        assert_eq!(encoded(t0 + 60_000).len + 2, encoded(t0 + 60_001).len);
        for step in [60_000, 60_001, -60_000, -1, 0, 1_000, 999, i64::MIN / 2] {
            let e = encoded(t0.wrapping_add(step));
            let (f, _) = Reader {
                bytes: e.as_slice(),
                at: 0,
            }
            .decode(&first);
            assert_eq!(f.t, t0.wrapping_add(step), "step {step}");
        }
    }

    /// Random pushes, late inserts, front drains and replays against a
    /// plain deque of the same entries: after every step the window holds
    /// exactly the same entries, bit for bit, and answers every query the
    /// same way.
    #[test]
    fn window_equals_a_plain_deque() {
        let (mut pushes, mut inserts, mut splits) = (0, 0, 0);
        for seed in 0..200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
            let mut w = Window::default();
            let mut model: VecDeque<Entry> = VecDeque::new();
            let mut ms = 1_748_779_200_000 + rng.below(1_000_000) as i64;
            let mut seq = rng.next_u64() >> rng.below(64);
            for _ in 0..600 {
                match rng.below(20) {
                    0..=11 => {
                        ms += [0, 1, 999, 60_000, 3_600_000][rng.below(5) as usize];
                        seq = if rng.chance(90) {
                            seq.wrapping_add(1)
                        } else {
                            rng.next_u64()
                        };
                        let e = entry(&mut rng, ms, seq, model.back());
                        if model.back().is_some_and(|b| b.key() >= e.key()) {
                            continue;
                        }
                        w.push(&e);
                        model.push_back(e);
                        pushes += 1;
                    }
                    12..=15 => {
                        let Some(first) = model.front() else { continue };
                        let lo = first.t;
                        // (A leap second's time runs up to 1.5 s past `ms`.)
                        let hi = model.back().map_or(ms, |b| b.t.max(ms));
                        let at = lo + rng.below((hi - lo + 1) as u64) as i64;
                        let seq = rng.next_u64();
                        let e = entry(&mut rng, at, seq, None);
                        let key = e.key();
                        let pos = model.partition_point(|x| x.key() < key);
                        assert_eq!(
                            w.partition_point(|k| k < key),
                            (pos, pos.checked_sub(1).map(|p| model[p].key()))
                        );
                        if model.get(pos).is_some_and(|x| x.key() == key) {
                            continue;
                        }
                        let blocks = w.block_count();
                        w.insert(pos, &e);
                        model.insert(pos, e);
                        inserts += 1;
                        splits += usize::from(w.block_count() > blocks);
                    }
                    // Odd seeds let the window grow, so blocks fill and split.
                    16 | 17 if seed % 2 == 0 || model.len() > 400 => {
                        let n = rng.below(2 * BLOCK as u64) as usize;
                        let mut drained = Vec::new();
                        w.drain_front(n, |e| drained.push(bits(e)));
                        let expected: Vec<Bits> = model
                            .drain(..n.min(model.len()))
                            .map(|e| bits(&e))
                            .collect();
                        assert_eq!(drained, expected);
                    }
                    18 | 19 => {
                        let mut seen = Vec::new();
                        let mut set = Vec::new();
                        w.replay(|e| {
                            seen.push(bits(e));
                            e.confident = rng.chance(50);
                            set.push(e.confident);
                        });
                        assert_eq!(seen, model.iter().map(bits).collect::<Vec<_>>());
                        for (e, c) in model.iter_mut().zip(set) {
                            e.confident = c;
                        }
                    }
                    _ => {}
                }
                assert_eq!(w.len(), model.len());
                assert_eq!(w.last_key(), model.back().map(Entry::key));
                assert_eq!(all(&w), model.iter().map(bits).collect::<Vec<_>>());
                if !model.is_empty() {
                    let i = rng.below(model.len() as u64) as usize;
                    assert_eq!(
                        w.iter_from(i).next().map(|e| bits(&e)),
                        model.get(i).map(bits)
                    );
                    assert_eq!(w.key_at(i), model.get(i).map(Entry::key));
                    let t = model[i].t + rng.below(3) as i64 - 1;
                    let expected = model.partition_point(|x| x.t < t);
                    assert_eq!(w.partition_point(|k| k.0 < t).0, expected);
                }
            }
        }
        assert!(pushes > 50_000 && inserts > 20_000, "{pushes} {inserts}");
        assert!(splits > 100, "{splits} block splits");
    }
}
