//! Small shared helpers: a process-wide clock in unix microseconds, a cheap PRNG,
//! base64 for the WebSocket key, and the few libc calls std does not wrap.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

struct Base {
    instant: Instant,
    unix_us: u64,
}

static BASE: OnceLock<Base> = OnceLock::new();

/// Microseconds since the unix epoch, monotonic within the process.
///
/// Anchored once on the wall clock so that times embedded in messages by one
/// process can be compared by another process on the same machine, and then
/// advanced with `Instant` so a wall-clock step cannot make latencies negative.
pub fn now_us() -> u64 {
    let b = BASE.get_or_init(|| Base {
        instant: Instant::now(),
        unix_us: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0),
    });
    b.unix_us + b.instant.elapsed().as_micros() as u64
}

/// xorshift64*: plenty for masks, jitter and names; no dependency needed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the clock, the pid and `salt`.
    pub fn seeded(salt: u64) -> Rng {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let mut r = Rng(t
            ^ (u64::from(std::process::id()) << 32)
            ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            | 1);
        r.next();
        r
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Exponentially distributed with the given mean (for Poisson-like drops).
    pub fn exp(&mut self, mean: f64) -> f64 {
        let u = ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        -u.ln() * mean
    }
}

/// Standard base64 with padding (only used for 16-byte WebSocket keys).
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

// The crate list is deliberately short (no libc): these three calls are all we need
// from C, and std already links the C library that provides them.
#[repr(C)]
struct RLimit {
    cur: u64,
    max: u64,
}

unsafe extern "C" {
    fn getrlimit(resource: i32, rlim: *mut RLimit) -> i32;
    fn setrlimit(resource: i32, rlim: *const RLimit) -> i32;
    fn sysconf(name: i32) -> i64;
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const std::ffi::c_void, len: u32) -> i32;
}

const RLIMIT_NOFILE: i32 = 7;
const SOL_IP: i32 = 0;
const IP_BIND_ADDRESS_NO_PORT: i32 = 24;

/// Clock ticks per second of the CPU times in /proc (100 on every usual kernel).
pub fn clock_ticks() -> u64 {
    const SC_CLK_TCK: i32 = 2;
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { sysconf(SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// Raises the soft descriptor limit to the hard one; returns the limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let mut l = RLimit { cur: 0, max: 0 };
    // SAFETY: plain syscalls on a struct we own, laid out like the kernel's rlimit64.
    unsafe {
        if getrlimit(RLIMIT_NOFILE, &mut l) != 0 {
            return 1024;
        }
        if l.cur < l.max {
            let want = RLimit {
                cur: l.max,
                max: l.max,
            };
            if setrlimit(RLIMIT_NOFILE, &want) == 0 {
                return l.max;
            }
        }
    }
    l.cur
}

/// Lets `bind(addr:0)` leave the port choice to `connect`, so one source address
/// can reuse the same local port towards different destinations (Linux only).
pub fn bind_address_no_port(fd: i32) {
    let one: i32 = 1;
    // SAFETY: setsockopt reads exactly `len` bytes from a live i32.
    unsafe {
        setsockopt(
            fd,
            SOL_IP,
            IP_BIND_ADDRESS_NO_PORT,
            (&one as *const i32).cast(),
            4,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now_us();
        let b = now_us();
        assert!(b >= a && a > 1_600_000_000_000_000);
    }
}
