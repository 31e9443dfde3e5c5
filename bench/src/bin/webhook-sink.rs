//! A webhook receiver for bench/webhooks.sh: answers every POST 204 as fast as it can
//! (a thread per connection, keep-alive) and measures each event's lag, from the
//! `created_at` in its body (the entry's commit time) to its arrival. Exits once no
//! request came for `idle` seconds after the first, printing
//! `events N unique U lag_ms p50 A p99 B max C`.
//!
//!   webhook-sink PORT [IDLE_SECS]

use hdrhistogram::Histogram;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Seen {
    lag: Histogram<u64>,
    ids: HashSet<String>,
    events: u64,
    last: Option<Instant>,
}

/// Milliseconds since the epoch of `2026-12-07T13:20:03.107Z`.
fn epoch_ms(s: &str) -> Option<i64> {
    let n = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, m, d) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let (hh, mm, ss, ms) = (n(11, 13)?, n(14, 16)?, n(17, 19)?, n(20, 23)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

fn field<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let at = body.find(&key)? + key.len();
    body[at..].split('"').next()
}

fn serve(s: TcpStream, seen: Arc<Mutex<Seen>>) -> Option<()> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut w = s;
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        loop {
            line.clear();
            if r.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let h = line.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().ok()?;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).ok()?;
        w.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").ok()?;
        let body = String::from_utf8_lossy(&body);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_millis() as i64;
        let lag = field(&body, "created_at")
            .and_then(epoch_ms)
            .map(|t| (now - t).max(0));
        let mut g = seen.lock().ok()?;
        g.events += 1;
        g.last = Some(Instant::now());
        if let Some(id) = field(&body, "id") {
            g.ids.insert(id.to_string());
        }
        if let Some(l) = lag {
            let _ = g.lag.record(l as u64);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = args
        .get(1)
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(3499);
    let idle = Duration::from_secs(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10));
    let l = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let seen = Arc::new(Mutex::new(Seen {
        lag: Histogram::new(3).expect("histogram"),
        ids: HashSet::new(),
        events: 0,
        last: None,
    }));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let seen = s2.clone();
            std::thread::spawn(move || serve(s, seen));
        }
    });
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let g = seen.lock().expect("lock");
        if g.last.is_some_and(|t| t.elapsed() >= idle) {
            println!(
                "events {} unique {} lag_ms p50 {} p99 {} max {}",
                g.events,
                g.ids.len(),
                g.lag.value_at_quantile(0.5),
                g.lag.value_at_quantile(0.99),
                g.lag.max()
            );
            return;
        }
    }
}
