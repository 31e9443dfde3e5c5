//! Joins waiting for their room's notification shard to be LISTENed: a join is checked
//! only once the node hears the room, or what commits between the check and the LISTEN
//! would never arrive.

use uuid::Uuid;

/// A join on its way: subscribed, not yet checked.
pub struct PendingJoin {
    /// Connection.
    pub key: usize,
    /// Socket id.
    pub sock: u64,
    /// The joining user.
    pub user: Uuid,
    /// Room.
    pub room: Uuid,
    /// Join request id.
    pub join_id: u64,
    /// The client's `last_seen_seq`.
    pub last_seen: Option<i64>,
}

/// The joins of one loop waiting for a shard.
#[derive(Default)]
pub struct Waiting {
    joins: Vec<PendingJoin>,
}

impl Waiting {
    /// Holds a join until its shard is active.
    pub fn hold(&mut self, p: PendingJoin) {
        self.joins.push(p);
    }

    /// Takes the joins whose room `active` says is heard now, in arrival order.
    pub fn take_ready(&mut self, active: impl Fn(Uuid) -> bool) -> Vec<PendingJoin> {
        let (ready, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.joins)
            .into_iter()
            .partition(|p| active(p.room));
        self.joins = wait;
        ready
    }

    /// Joins waiting.
    pub fn len(&self) -> usize {
        self.joins.len()
    }

    /// True when no join waits.
    pub fn is_empty(&self) -> bool {
        self.joins.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(key: usize, room: u128) -> PendingJoin {
        PendingJoin {
            key,
            sock: key as u64,
            user: Uuid::from_u128(7),
            room: Uuid::from_u128(room),
            join_id: key as u64,
            last_seen: None,
        }
    }

    #[test]
    fn joins_go_on_when_their_room_is_heard_in_order() {
        let mut w = Waiting::default();
        w.hold(p(1, 10));
        w.hold(p(2, 20));
        w.hold(p(3, 10));
        assert!(w.take_ready(|_| false).is_empty());
        let ready = w.take_ready(|r| r == Uuid::from_u128(10));
        assert_eq!(ready.iter().map(|p| p.key).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(w.len(), 1);
        assert_eq!(w.take_ready(|_| true).len(), 1);
        assert!(w.is_empty());
    }
}
