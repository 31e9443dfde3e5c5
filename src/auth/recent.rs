//! A bounded map of what was used recently, safe to share between threads.
//!
//! Two generations: a lookup moves its entry to the young one, and when the young one is
//! full the old one is dropped. Nearly least-recently-used at the cost of a map swap,
//! never more than `cap` entries, and each operation a short critical section (event
//! loops call it).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// At most `cap` entries, the least recently used dropped first (approximately).
pub struct Recent<K, V> {
    cap: usize,
    maps: Mutex<(HashMap<K, V>, HashMap<K, V>)>,
}

impl<K: Hash + Eq, V: Clone> Recent<K, V> {
    /// An empty map holding at most `cap` entries (2 at least).
    pub fn new(cap: usize) -> Recent<K, V> {
        Recent {
            cap: cap.max(2),
            maps: Mutex::new((HashMap::new(), HashMap::new())),
        }
    }

    /// The value of `key`, marked as used.
    pub fn get(&self, key: &K) -> Option<V>
    where
        K: Clone,
    {
        let mut maps = self.maps.lock().ok()?;
        if let Some(v) = maps.0.get(key) {
            return Some(v.clone());
        }
        let v = maps.1.remove(key)?;
        self.insert(&mut maps, key.clone(), v.clone());
        Some(v)
    }

    /// Keeps `value` under `key`.
    pub fn put(&self, key: K, value: V) {
        if let Ok(mut maps) = self.maps.lock() {
            self.insert(&mut maps, key, value);
        }
    }

    fn insert(&self, maps: &mut (HashMap<K, V>, HashMap<K, V>), key: K, value: V) {
        if maps.0.len() >= self.cap / 2 {
            maps.1 = std::mem::take(&mut maps.0);
        }
        maps.0.insert(key, value);
    }

    /// Drops the entries `keep` says no to.
    pub fn retain(&self, keep: impl Fn(&V) -> bool) {
        if let Ok(mut maps) = self.maps.lock() {
            maps.0.retain(|_, v| keep(v));
            maps.1.retain(|_, v| keep(v));
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.maps.lock().map(|m| m.0.len() + m.1.len()).unwrap_or(0)
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_keeps_what_is_used() {
        let c: Recent<u32, u32> = Recent::new(10);
        for n in 0..100 {
            c.put(n, n * 2);
            // The first one stays: it is looked up all the time.
            assert_eq!(c.get(&0), Some(0));
            assert!(c.len() <= 10);
        }
        assert!(c.get(&1).is_none());
        assert_eq!(c.get(&99), Some(198));
        c.retain(|v| *v != 0);
        assert!(c.get(&0).is_none());
        assert!(!c.is_empty());
    }
}
