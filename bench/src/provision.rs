//! Setting a run up through the REST API: users (with their tokens), rooms and
//! memberships, in parallel over keep-alive connections. Registration is the slow
//! part (argon2 on the server), hence the worker pool and `--users` reuse.

use crate::http::Http;
use serde_json::json;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What provisioning made.
pub struct Provisioned {
    /// Access token per user.
    pub tokens: Vec<String>,
    /// Id per user.
    pub user_ids: Vec<String>,
    /// Room ids.
    pub rooms: Vec<String>,
    /// Each room's last seq once provisioned: the memberships are entries of the
    /// stream (system entries), so a run's messages start after them.
    pub heads: Vec<u64>,
    /// Seconds it took.
    pub secs: f64,
}

/// Runs `f(conn, i)` for every `i < n` on `workers` threads, each with its own
/// keep-alive connection; prints progress under `label` once a second.
fn par<T: Send, F>(
    server: &str,
    n: usize,
    workers: usize,
    label: &str,
    f: F,
) -> Result<Vec<T>, String>
where
    F: Fn(&mut Http, usize) -> Result<T, String> + Sync,
{
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    let err: Mutex<Option<String>> = Mutex::new(None);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers.min(n) {
            s.spawn(|| {
                let mut http = Http::new(server);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || err.lock().expect("lock").is_some() {
                        break;
                    }
                    match f(&mut http, i) {
                        Ok(v) => out.lock().expect("lock")[i] = Some(v),
                        Err(e) => {
                            *err.lock().expect("lock") = Some(format!("{label} #{i}: {e}"));
                            break;
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let mut last = Instant::now();
        while done.load(Ordering::Relaxed) < n && err.lock().expect("lock").is_none() {
            std::thread::sleep(Duration::from_millis(50));
            if last.elapsed() >= Duration::from_secs(1) && n > 0 {
                last = Instant::now();
                let d = done.load(Ordering::Relaxed);
                eprintln!(
                    "  {label}: {d}/{n} ({:.0}/s)",
                    d as f64 / start.elapsed().as_secs_f64()
                );
            }
        }
    });
    if let Some(e) = err.into_inner().expect("lock") {
        return Err(e);
    }
    Ok(out
        .into_inner()
        .expect("lock")
        .into_iter()
        .map(|v| v.expect("every item done"))
        .collect())
}

/// One call with retries on answers that say "try again" (429, 5xx) and on
/// transport errors; anything else that is not 2xx is an error, and so is a 429 to a
/// registration (a per-address limit that retries would not outlast).
fn call(
    http: &mut Http,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<serde_json::Value, String> {
    let mut wait = Duration::from_millis(100);
    for attempt in 0.. {
        let retry = match http.call(method, path, token, Some(body)) {
            Ok(r) if (200..300).contains(&r.status) => return Ok(r.json()),
            // A per-address registration limit refills over a minute: retrying would
            // only stall the run, so stop at once, naming the settings to use.
            Ok(r) if r.status == 429 && path == "/auth/register" => {
                return Err(format!(
                    "{method} {path}: 429 {}: the server limits registrations per address \
                     (limits.register_per_ip_per_min); start chatd with --config \
                     loadtest/server.toml (storm at full size: bench/storm.toml), or pass \
                     --users under the limit",
                    String::from_utf8_lossy(&r.body)
                ));
            }
            Ok(r) if r.status == 429 || r.status >= 500 => {
                format!("{} {}", r.status, String::from_utf8_lossy(&r.body))
            }
            Ok(r) => {
                return Err(format!(
                    "{method} {path}: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
            Err(e) => e,
        };
        if attempt >= 8 {
            return Err(format!("{method} {path}: {retry}"));
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_secs(2));
    }
    unreachable!()
}

/// Registers `users` users, creates `rooms` rooms (room `r` by user `r % users`) and
/// adds the memberships `(user, room)` that the plan needs.
pub fn provision(
    server: &str,
    users: usize,
    rooms: usize,
    memberships: &[(u32, u32)],
    workers: usize,
    tag: &str,
) -> Result<Provisioned, String> {
    let start = Instant::now();
    // Fail fast with a clear message when nothing answers, rather than after retries.
    Http::new(server)
        .call("GET", "/health", None, None)
        .map_err(|e| format!("cannot reach chatd at {server}: {e}"))?;
    let registered = par(server, users, workers, "register", |http, i| {
        let name = format!("b{tag}u{i}");
        let body = json!({
            "username": name,
            "email": format!("{name}@example.com"),
            "password": "bench-password-1",
        })
        .to_string();
        let v = call(http, "POST", "/auth/register", None, &body)?;
        let id = v["user"]["id"].as_str().ok_or("no user id")?.to_string();
        let token = v["tokens"]["accessToken"]
            .as_str()
            .ok_or("no access token")?
            .to_string();
        Ok((id, token))
    })?;
    let (user_ids, tokens): (Vec<String>, Vec<String>) = registered.into_iter().unzip();
    let room_ids = par(server, rooms, workers, "rooms", |http, r| {
        let body = json!({ "name": format!("bench-{tag}-{r}") }).to_string();
        let v = call(http, "POST", "/rooms", Some(&tokens[r % users]), &body)?;
        Ok(v["id"].as_str().ok_or("no room id")?.to_string())
    })?;
    let joins: Vec<(u32, u32)> = memberships
        .iter()
        .copied()
        .filter(|&(u, r)| r as usize % users != u as usize)
        .collect();
    par(server, joins.len(), workers, "memberships", |http, i| {
        let (u, r) = joins[i];
        let path = format!("/rooms/{}/join", room_ids[r as usize]);
        call(http, "POST", &path, Some(&tokens[u as usize]), "")?;
        Ok(())
    })?;
    let heads = par(server, rooms, workers, "heads", |http, r| {
        let path = format!("/rooms/{}/messages?limit=1", room_ids[r]);
        let v = call(http, "GET", &path, Some(&tokens[r % users]), "")?;
        Ok(v["messages"][0]["seq"].as_u64().unwrap_or(0))
    })?;
    Ok(Provisioned {
        tokens,
        user_ids,
        rooms: room_ids,
        heads,
        secs: start.elapsed().as_secs_f64(),
    })
}
