//! Web Push delivery, at least once. The notifier writes each push to make into
//! `push_outbox` in the transaction that takes its notification out of `push_pending`;
//! this thread, on every node with a VAPID key, claims due rows, hands them to sender
//! threads that make the requests (blocking `ureq`, never on an event loop or a
//! database worker) and records what the push service answered: 2xx deletes the row;
//! 5xx, 429, a timeout or a connection error reschedules it (exponential backoff with
//! jitter, at least the service's `Retry-After`) until it is `push.max_age_hours` old,
//! then it is dropped and counted; 404/410 removes the subscription.
//!
//! A claim is on the subscription (`busy_until`, a lease longer than one attempt can
//! last): one request at most is in flight per subscription in the whole cluster, so a
//! slow push service holds one sender, and the claim of a node that died runs out by
//! itself, its push then made by whichever node claims it next (perhaps a second time:
//! at least once, not exactly once).
//!
//! The endpoint's host is resolved here, at each attempt, and must give public
//! addresses only (unless `push.allow_private_endpoints`); the request connects to those
//! checked addresses alone (`Pinned`), so a name cannot be made to point inside the
//! network between the check and the connect. A refused address removes the
//! subscription; a name that does not resolve is retried.

use super::subscriptions::{self, Unreachable};
use super::webpush::{self, Outcome};
use crate::base::config::PushConfig;
use crate::base::metrics::PushMetrics;
use crossbeam_channel::{Receiver, Sender, bounded, select, unbounded};
use p256::SecretKey;
use postgres::Client;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};

/// Requests to push services in flight at once from this node (one per sender thread).
const SENDERS: usize = 4;
/// Time between looks for due pushes when nothing wakes the thread (the notifier of
/// this node wakes it at once; other nodes' pushes are seen this late at most).
const IDLE: Duration = Duration::from_millis(500);
/// How long a claim outlives the attempt's own limit (name resolution included).
const LEASE_MARGIN: Duration = Duration::from_secs(60);
/// First retry delay; doubled per attempt, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest delay between two attempts (a `Retry-After` may ask for more).
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How often the outbox is counted for `chatd_push_pending`.
const COUNT_EVERY: Duration = Duration::from_secs(5);

/// Claims up to `$1` subscriptions with a due push that no sender holds, for `$2`
/// seconds, each with its oldest due push (none: taken meanwhile, the claim is let go)
/// and the seconds that push has left before `$3` hours.
const CLAIM_SQL: &str = "WITH s AS (
        SELECT id FROM push_subscriptions
        WHERE id IN (SELECT subscription_id FROM push_outbox WHERE next_at <= now())
          AND (busy_until IS NULL OR busy_until < now())
        LIMIT $1 FOR UPDATE SKIP LOCKED),
    c AS (
        UPDATE push_subscriptions x SET busy_until = now() + make_interval(secs => $2)
        FROM s WHERE x.id = s.id
        RETURNING x.id, x.endpoint, x.p256dh, x.auth)
    SELECT c.id, c.endpoint, c.p256dh, c.auth, o.id, o.payload, o.attempts,
        extract(epoch FROM o.created_at + make_interval(hours => $3) - now())::float8
    FROM c LEFT JOIN LATERAL (
        SELECT id, payload, attempts, created_at FROM push_outbox
        WHERE subscription_id = c.id AND next_at <= now() ORDER BY id LIMIT 1) o ON true";

/// Deletes push `$1` (accepted, or given up) and lets its subscription `$2` go.
const DONE_SQL: &str = "WITH d AS (DELETE FROM push_outbox WHERE id = $1)
    UPDATE push_subscriptions SET busy_until = NULL WHERE id = $2";

/// Tries push `$1` again in `$3` seconds, and the other pushes to its subscription `$2`
/// no sooner (the service is failing: one backoff per subscription, and the oldest push
/// still goes first), and lets the subscription go.
const LATER_SQL: &str = "WITH d AS (UPDATE push_outbox
        SET attempts = attempts + (id = $1)::int,
            next_at = greatest(next_at, now() + make_interval(secs => $3))
        WHERE subscription_id = $2)
    UPDATE push_subscriptions SET busy_until = NULL WHERE id = $2";

/// What the push thread needs.
pub struct PusherThread {
    /// `[push]`.
    pub cfg: PushConfig,
    /// The VAPID key.
    pub key: SecretKey,
    /// The database (a connection of its own).
    pub db_url: String,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// `chatd_push_*`.
    pub metrics: Arc<PushMetrics>,
    /// Nudged by this node's notifier after it wrote pushes.
    pub wake: Receiver<()>,
    /// Set at shutdown.
    pub stop: Arc<AtomicBool>,
}

/// One attempt handed to a sender.
struct Job {
    subscription: i64,
    push: i64,
    endpoint: String,
    p256dh: Vec<u8>,
    auth: Vec<u8>,
    payload: String,
    attempts: i32,
    /// Seconds left before the push is too old (its `TTL`).
    left: f64,
}

/// What became of an attempt.
enum Verdict {
    /// The push service's answer.
    Answer(Outcome),
    /// The host resolved to an address we may not call.
    Unsafe,
    /// The payload could not be sealed for the subscription's keys.
    Unsealable(String),
}

/// Runs until `stop`: claims, sends through the sender threads, records.
pub fn run(t: PusherThread) {
    let (jobs_tx, jobs_rx) = bounded::<Job>(SENDERS);
    let (done_tx, done_rx) = unbounded::<(Job, Verdict)>();
    let agent = agent(&t.cfg);
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let (rx, tx, agent) = (jobs_rx.clone(), done_tx.clone(), agent.clone());
        let (key, cfg) = (t.key.clone(), t.cfg.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("push-{i}"))
            .spawn(move || sender(rx, tx, agent, key, cfg));
        match spawned {
            Ok(h) => senders.push(h),
            Err(e) => log::error!("push sender thread: {e}"),
        }
    }
    drop((jobs_rx, done_tx));
    let mut s = State {
        t: &t,
        in_flight: 0,
        done: Vec::new(),
        counted: None,
    };
    while !t.stop.load(Relaxed) {
        let Some(mut db) = connect(&t) else {
            wait(&t.stop, Duration::from_secs(1));
            continue;
        };
        if let Err(e) = s.work(&mut db, &jobs_tx, &done_rx) {
            log::warn!("push outbox: {e}");
            wait(&t.stop, Duration::from_secs(1));
        }
    }
    // Attempts under way end within their timeout; what they got is recorded if the
    // database is there, else their claims run out and the pushes are made again.
    drop(jobs_tx);
    for h in senders {
        let _ = h.join();
    }
    s.done.extend(done_rx.try_iter());
    if let Some(mut db) = connect(&t) {
        let _ = s.record(&mut db);
    }
}

/// The agent for push services: no redirects, no proxy (the checked address is the
/// one connected to), every status an answer.
fn agent(cfg: &PushConfig) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(cfg.timeout_ms)))
        .max_redirects(0)
        .proxy(None)
        .http_status_as_error(false)
        .user_agent(concat!("chatd-push/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        Pinned,
    )
}

thread_local! {
    /// The addresses checked for the request this sender thread is making.
    static PINNED: RefCell<Vec<SocketAddr>> = const { RefCell::new(Vec::new()) };
}

/// The resolver of the push agent: the addresses the sender thread checked for this
/// request, nothing else (ureq resolves on the thread that makes the request).
#[derive(Debug)]
struct Pinned;

impl Resolver for Pinned {
    fn resolve(
        &self,
        _uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut out = self.empty();
        PINNED.with(|p| {
            for a in p.borrow().iter().take(16) {
                out.push(*a);
            }
        });
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

fn wait(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn connect(t: &PusherThread) -> Option<Client> {
    crate::pg::connect_named(&t.db_url, t.connect_timeout, "chatd-push-sender").ok()
}

/// The delay before attempt `attempts + 1` after a failure: doubling from
/// [`FIRST_BACKOFF`] up to [`MAX_BACKOFF`], a random half of it taken off (so nodes
/// and subscriptions failing together do not come back together), and never sooner
/// than the service's `Retry-After`.
pub fn backoff(attempts: i32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let exp = FIRST_BACKOFF.saturating_mul(1 << attempts.clamp(0, 20));
    let d = exp.min(MAX_BACKOFF);
    let d = d.mul_f64(1.0 - 0.5 * jitter.clamp(0.0, 1.0));
    retry_after.map_or(d, |r| d.max(r))
}

/// The thread's state across connections.
struct State<'a> {
    t: &'a PusherThread,
    /// Attempts handed to senders and not yet recorded.
    in_flight: usize,
    /// Attempts made and not yet recorded.
    done: Vec<(Job, Verdict)>,
    /// When the outbox was last counted.
    counted: Option<Instant>,
}

impl State<'_> {
    /// Claims, hands out and records while the connection lasts.
    fn work(
        &mut self,
        db: &mut Client,
        jobs: &Sender<Job>,
        done: &Receiver<(Job, Verdict)>,
    ) -> Result<(), postgres::Error> {
        while !self.t.stop.load(Relaxed) {
            self.done.extend(done.try_iter());
            self.record(db)?;
            if self.in_flight < SENDERS {
                for j in self.claim(db, SENDERS - self.in_flight)? {
                    self.in_flight += 1;
                    // Never full: at most SENDERS attempts are out, and it holds SENDERS.
                    if let Err(e) = jobs.try_send(j) {
                        self.done.push((e.into_inner(), Verdict::Answer(lost())));
                    }
                }
            }
            if self.counted.is_none_or(|c| c.elapsed() >= COUNT_EVERY) {
                let n: i64 = db
                    .query_one("SELECT count(*) FROM push_outbox", &[])?
                    .get(0);
                self.t.metrics.pending.store(n.max(0) as u64, Relaxed);
                self.counted = Some(Instant::now());
            }
            // Wait for an answer (a sender free again), the notifier, or the next look.
            select! {
                recv(done) -> d => self.done.extend(d.ok()),
                recv(self.t.wake) -> _ => {}
                default(IDLE) => {}
            }
        }
        Ok(())
    }

    /// Claims up to `n` subscriptions with a due push; pushes too old are dropped.
    fn claim(&mut self, db: &mut Client, n: usize) -> Result<Vec<Job>, postgres::Error> {
        let lease = Duration::from_millis(self.t.cfg.timeout_ms) + LEASE_MARGIN;
        let hours = i32::try_from(self.t.cfg.max_age_hours).unwrap_or(i32::MAX);
        let rows = db.query(CLAIM_SQL, &[&(n as i64), &lease.as_secs_f64(), &hours])?;
        let mut jobs = Vec::new();
        for r in rows {
            let subscription: i64 = r.get(0);
            let Some(push) = r.get::<_, Option<i64>>(4) else {
                db.execute(
                    "UPDATE push_subscriptions SET busy_until = NULL WHERE id = $1",
                    &[&subscription],
                )?;
                continue;
            };
            let left: f64 = r.get(7);
            if left <= 0.0 {
                log::info!("push {push} to subscription {subscription}: too old, dropped");
                self.t.metrics.dropped.fetch_add(1, Relaxed);
                db.execute(DONE_SQL, &[&push, &subscription])?;
                continue;
            }
            jobs.push(Job {
                subscription,
                push,
                endpoint: r.get(1),
                p256dh: r.get(2),
                auth: r.get(3),
                payload: r.get(5),
                attempts: r.get(6),
                left,
            });
        }
        Ok(jobs)
    }

    /// Records the attempts made; one that cannot be recorded stays for the next
    /// connection (its claim may run out first: then it is simply made again).
    fn record(&mut self, db: &mut Client) -> Result<(), postgres::Error> {
        let m = &self.t.metrics;
        while let Some((j, v)) = self.done.pop() {
            let (sub, push) = (j.subscription, j.push);
            let mut gave_up = false;
            let recorded = match &v {
                Verdict::Answer(Outcome::Accepted) => db.execute(DONE_SQL, &[&push, &sub]),
                Verdict::Answer(Outcome::Gone) | Verdict::Unsafe => {
                    db.execute("DELETE FROM push_subscriptions WHERE id = $1", &[&sub])
                }
                Verdict::Answer(Outcome::Refused(_)) | Verdict::Unsealable(_) => {
                    db.execute(DONE_SQL, &[&push, &sub])
                }
                Verdict::Answer(Outcome::Retry(why, after)) => {
                    let delay = backoff(j.attempts, *after, rand::random::<f64>());
                    gave_up = delay.as_secs_f64() >= j.left;
                    if gave_up {
                        log::warn!("push {push} to subscription {sub}: {why}; too old, dropped");
                        db.execute(DONE_SQL, &[&push, &sub])
                    } else {
                        log::info!("push {push} to subscription {sub}: {why}; again in {delay:?}");
                        db.execute(LATER_SQL, &[&push, &sub, &delay.as_secs_f64()])
                    }
                }
            };
            if let Err(e) = recorded {
                self.done.push((j, v));
                return Err(e);
            }
            self.in_flight = self.in_flight.saturating_sub(1);
            match v {
                Verdict::Answer(Outcome::Accepted) => {
                    m.sent.fetch_add(1, Relaxed);
                }
                Verdict::Answer(Outcome::Gone) => {
                    log::info!("push subscription {sub} is gone: removed");
                    m.removed_gone.fetch_add(1, Relaxed);
                }
                Verdict::Unsafe => {
                    log::warn!(
                        "push subscription {sub}: its host resolves to a refused address: removed"
                    );
                    m.removed_refused.fetch_add(1, Relaxed);
                }
                Verdict::Answer(Outcome::Refused(why)) | Verdict::Unsealable(why) => {
                    log::warn!("push {push} to subscription {sub}: {why}; dropped");
                    m.failed.fetch_add(1, Relaxed);
                    m.dropped.fetch_add(1, Relaxed);
                }
                Verdict::Answer(Outcome::Retry(..)) => {
                    m.failed.fetch_add(1, Relaxed);
                    if gave_up {
                        m.dropped.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The verdict of an attempt no sender took (cannot happen: see `work`).
fn lost() -> Outcome {
    Outcome::Retry("no sender took it".into(), None)
}

/// A sender thread: one attempt at a time until the pusher goes.
fn sender(
    jobs: Receiver<Job>,
    done: Sender<(Job, Verdict)>,
    agent: ureq::Agent,
    key: SecretKey,
    cfg: PushConfig,
) {
    while let Ok(j) = jobs.recv() {
        let v = attempt(&j, &agent, &key, &cfg);
        if done.send((j, v)).is_err() {
            return;
        }
    }
}

/// Checks the endpoint's address, seals the payload and makes the request.
fn attempt(j: &Job, agent: &ureq::Agent, key: &SecretKey, cfg: &PushConfig) -> Verdict {
    let allow = cfg.allow_private_endpoints;
    let addrs = match subscriptions::check_endpoint(&j.endpoint, allow) {
        Err(_) => return Verdict::Unsafe,
        Ok(target) => match subscriptions::resolve(&target, allow) {
            Ok(a) => a,
            Err(Unreachable::Refused) => return Verdict::Unsafe,
            Err(Unreachable::NotFound) => {
                return Verdict::Answer(Outcome::Retry("host does not resolve".into(), None));
            }
        },
    };
    let body = match webpush::encrypt(j.payload.as_bytes(), &j.p256dh, &j.auth) {
        Ok(b) => b,
        Err(e) => return Verdict::Unsealable(e.0.into()),
    };
    let now = crate::base::model::now_secs();
    let auth = webpush::vapid_header(key, &j.endpoint, &cfg.subject, now, 12 * 3600);
    PINNED.with(|p| *p.borrow_mut() = addrs);
    let ttl = j.left.max(0.0) as u64;
    let outcome = webpush::send(agent, &j.endpoint, &auth, &body, ttl, "normal");
    PINNED.with(|p| p.borrow_mut().clear());
    Verdict::Answer(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        assert_eq!(backoff(0, None, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(3, None, 0.0), Duration::from_secs(8));
        assert_eq!(backoff(3, None, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(40, None, 0.0), MAX_BACKOFF);
        let later = Some(Duration::from_secs(30));
        assert_eq!(backoff(0, later, 0.5), Duration::from_secs(30));
        assert_eq!(backoff(10, later, 0.0), Duration::from_secs(1024));
    }
}
