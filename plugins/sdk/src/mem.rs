//! `memcmp` for the guest, a machine word at a time.
//!
//! Rust compares byte strings (`str == str`, `Ord` on `String`, map lookups by customer id)
//! through `memcmp`. The one wasi-libc ships compares one byte per loop iteration; in POP's
//! schedulers, which look customers up by id in their state, it was a quarter of a 10,000-agenda
//! decision. This one compares eight bytes per step (wasm has unaligned 64-bit loads), and
//! only walks bytes to rank the first difference. Defining the symbol here keeps the linker
//! from pulling libc's.

/// Bytes compared per step.
const WORD: usize = size_of::<u64>();

/// `memcmp(a, b, n)`: negative, zero or positive as `a[..n]` sorts before, equal to or after
/// `b[..n]`, comparing bytes as unsigned.
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes (the C contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n < WORD {
        return short(a, b, n);
    }
    let mut at = 0;
    loop {
        // SAFETY: `at + WORD <= n`, and both are valid for `n` bytes.
        let (x, y) = unsafe { (load(a, at), load(b, at)) };
        if x != y {
            return rank(x, y);
        }
        at += WORD;
        if at + WORD > n {
            break;
        }
    }
    if at == n {
        return 0;
    }
    // The tail as the last whole word, overlapping bytes already known to be equal, so its
    // first difference is still the first difference.
    // SAFETY: `n >= WORD`.
    let (x, y) = unsafe { (load(a, n - WORD), load(b, n - WORD)) };
    if x == y { 0 } else { rank(x, y) }
}

/// Fewer than [`WORD`] bytes: one byte at a time (short keys are rare in POP's data).
fn short(a: *const u8, b: *const u8, n: usize) -> i32 {
    for at in 0..n {
        // SAFETY: `at < n`; memcmp's contract.
        let (x, y) = unsafe { (*a.add(at), *b.add(at)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// The little-endian word at `p + at`.
///
/// # Safety
/// `p + at .. p + at + WORD` must be readable.
unsafe fn load(p: *const u8, at: usize) -> u64 {
    // SAFETY: the caller's contract; wasm loads may be unaligned.
    u64::from_le(unsafe { p.add(at).cast::<u64>().read_unaligned() })
}

/// The order of two different little-endian words by their first differing byte, which is
/// their lowest differing one.
fn rank(x: u64, y: u64) -> i32 {
    let shift = (x ^ y).trailing_zeros() & !7;
    i32::from((x >> shift) as u8) - i32::from((y >> shift) as u8)
}

/// `bcmp`: zero when the bytes are equal (LLVM may call it for `==`).
///
/// # Safety
/// As [`memcmp`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's contract is memcmp's.
    unsafe { memcmp(a, b, n) }
}
