//! Each user's WebSocket connections on one loop: read state, membership changes and
//! room-mates' profile changes go to every socket of the user, whatever rooms it joined.

use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// The per-user index of one loop's sockets.
#[derive(Default)]
pub struct Users {
    keys: HashMap<Uuid, Vec<usize>>,
}

impl Users {
    /// Connection `k` belongs to `user`.
    pub fn add(&mut self, user: Uuid, k: usize) {
        self.keys.entry(user).or_default().push(k);
    }

    /// Connection `k` of `user` ended; a user without sockets is forgotten.
    pub fn remove(&mut self, user: Uuid, k: usize) {
        if let Some(keys) = self.keys.get_mut(&user) {
            keys.retain(|&x| x != k);
            if keys.is_empty() {
                self.keys.remove(&user);
            }
        }
    }

    /// The user's connections on this loop.
    pub fn keys(&self, user: Uuid) -> &[usize] {
        self.keys.get(&user).map_or(&[], Vec::as_slice)
    }

    /// The connections on this loop of the users in `set` (walking the smaller of the
    /// two, so a large set costs no more than this loop's users).
    pub fn keys_of(&self, set: &HashSet<Uuid>) -> Vec<usize> {
        if set.len() < self.keys.len() {
            set.iter().flat_map(|u| self.keys(*u)).copied().collect()
        } else {
            self.keys
                .iter()
                .filter(|(u, _)| set.contains(u))
                .flat_map(|(_, k)| k)
                .copied()
                .collect()
        }
    }

    /// Users with at least one socket here.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no user has a socket here.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_come_and_go_and_an_empty_user_is_forgotten() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut u = Users::default();
        u.add(a, 1);
        u.add(a, 2);
        u.add(b, 3);
        assert_eq!(u.keys(a), &[1, 2]);
        u.remove(a, 1);
        assert_eq!(u.keys(a), &[2]);
        u.remove(a, 7); // not a socket of a: nothing changes
        assert_eq!(u.keys(a), &[2]);
        u.remove(a, 2);
        assert!(u.keys(a).is_empty());
        assert_eq!(u.len(), 1);
        u.remove(b, 3);
        assert!(u.is_empty());
    }

    #[test]
    fn the_sockets_of_a_set_of_users_whichever_is_smaller() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let mut u = Users::default();
        u.add(a, 1);
        u.add(a, 2);
        u.add(b, 3);
        let sorted = |mut v: Vec<usize>| {
            v.sort();
            v
        };
        assert_eq!(sorted(u.keys_of(&HashSet::from([a]))), [1, 2]);
        assert_eq!(sorted(u.keys_of(&HashSet::from([a, b, c]))), [1, 2, 3]);
        assert!(u.keys_of(&HashSet::from([c])).is_empty());
        assert!(u.keys_of(&HashSet::new()).is_empty());
    }
}
