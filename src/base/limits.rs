//! Fixed-window rate limits shared by the loops of a node (login attempts, connections,
//! each user's events across transports).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Counts events per key in one-minute windows.
#[derive(Default)]
pub struct Windows {
    map: Mutex<HashMap<String, (Instant, u32)>>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl Windows {
    /// Counts one event for `key`; `Err(seconds)` to wait when `limit` is passed.
    pub fn hit(&self, key: &str, limit: u32) -> Result<(), u64> {
        if limit == 0 {
            return Ok(());
        }
        let Ok(mut map) = self.map.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = map.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > limit {
            let left = WINDOW.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        Ok(())
    }
}

/// Open connections per client address.
#[derive(Default)]
pub struct PerIp {
    map: Mutex<HashMap<IpAddr, u32>>,
}

impl PerIp {
    /// Takes a slot for `ip`; false (and nothing taken) when `limit` is reached.
    pub fn acquire(&self, ip: IpAddr, limit: u32) -> bool {
        if limit == 0 {
            return true;
        }
        let Ok(mut map) = self.map.lock() else {
            return true;
        };
        let n = map.entry(ip).or_insert(0);
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }

    /// Gives a slot back.
    pub fn release(&self, ip: IpAddr, limit: u32) {
        if limit == 0 {
            return;
        }
        if let Ok(mut map) = self.map.lock()
            && let Some(n) = map.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_per_key() {
        let w = Windows::default();
        assert!(w.hit("a", 2).is_ok());
        assert!(w.hit("a", 2).is_ok());
        let wait = w.hit("a", 2).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(w.hit("b", 2).is_ok());
        assert!(w.hit("c", 0).is_ok());
    }

    #[test]
    fn per_ip_slots() {
        let p = PerIp::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(p.acquire(ip, 2) && p.acquire(ip, 2));
        assert!(!p.acquire(ip, 2));
        p.release(ip, 2);
        assert!(p.acquire(ip, 2));
    }
}

/// Shards of [`PerUser`]: loops rarely wait on one another's lock.
const USER_SHARDS: usize = 16;

/// Events per user in one-second windows, shared by every transport of a node: a user's
/// REST posts, room creations and WebSocket events count together against one limit.
#[derive(Default)]
pub struct PerUser {
    shards: [Mutex<HashMap<Uuid, (Instant, u32)>>; USER_SHARDS],
}

impl PerUser {
    /// Counts one event of `user`; `Err(seconds)` to wait when `limit` a second is passed
    /// (0 = unlimited).
    pub fn hit(&self, user: Uuid, limit: u32) -> Result<(), u64> {
        if limit == 0 {
            return Ok(());
        }
        let shard = &self.shards[user.as_u128() as usize % USER_SHARDS];
        let Ok(mut map) = shard.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let second = Duration::from_secs(1);
        if map.len() > 10_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < second);
        }
        let entry = map.entry(user).or_insert((now, 0));
        if now.duration_since(entry.0) >= second {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 > limit {
            return Err(1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod per_user_tests {
    use super::*;

    #[test]
    fn a_users_events_count_together_and_others_are_apart() {
        let p = PerUser::default();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(17));
        for _ in 0..3 {
            assert_eq!(p.hit(a, 3), Ok(()));
        }
        assert_eq!(p.hit(a, 3), Err(1));
        assert_eq!(p.hit(b, 3), Ok(()));
        assert_eq!(p.hit(a, 0), Ok(()));
    }
}
