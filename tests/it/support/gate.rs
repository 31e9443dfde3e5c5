//! Tests that measure time run alone. Every `TestDb` holds a shared slot; `alone()` waits
//! until no slot is held and keeps new ones from being taken while it lives, so a
//! latency bound is checked on a machine that runs that test only, not the whole suite
//! on two cores (where a fast reader's p90 went from 30 ms to 785 ms).

use std::cell::Cell;
use std::sync::{Condvar, Mutex};

struct State {
    shared: usize,
    alone: bool,
    waiting: usize,
}

static STATE: Mutex<State> = Mutex::new(State {
    shared: 0,
    alone: false,
    waiting: 0,
});
static CHANGED: Condvar = Condvar::new();

thread_local! {
    /// Slots this thread holds: a thread that holds one never waits for another, or a
    /// test that makes a second database would wait on an `alone` that waits on it.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// A shared slot, held by every test database.
pub struct Shared(());

impl Shared {
    /// Takes a slot, waiting while a test runs alone or waits to.
    pub fn take() -> Shared {
        let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if HELD.get() == 0 {
            while s.alone || s.waiting > 0 {
                s = CHANGED.wait(s).unwrap_or_else(|e| e.into_inner());
            }
        }
        s.shared += 1;
        HELD.set(HELD.get() + 1);
        Shared(())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
        s.shared -= 1;
        HELD.set(HELD.get().saturating_sub(1));
        CHANGED.notify_all();
    }
}

/// The whole machine for one test, until dropped.
pub struct Alone(());

/// Waits until no other test holds a database, then keeps them out until dropped.
pub fn alone() -> Alone {
    let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
    s.waiting += 1;
    while s.alone || s.shared > 0 {
        s = CHANGED.wait(s).unwrap_or_else(|e| e.into_inner());
    }
    s.waiting -= 1;
    s.alone = true;
    HELD.set(HELD.get() + 1);
    Alone(())
}

impl Drop for Alone {
    fn drop(&mut self) {
        let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
        s.alone = false;
        HELD.set(HELD.get().saturating_sub(1));
        CHANGED.notify_all();
    }
}
