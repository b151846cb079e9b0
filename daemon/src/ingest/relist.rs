//! Relist bookkeeping: which keys a relist has delivered so far, per type.
//!
//! kube's watcher never emits deletes for objects that vanished while its
//! watch was broken; it relists instead (`Init`, `InitApply`…, `InitDone`).
//! We keep the set of keys seen since the last `Init`; at `InitDone` every
//! key in the journal's state that the relist did not deliver was deleted
//! during the gap. A new `Init` before `InitDone` discards the partial set.
//!
//! Changes are undoable: a batch whose preparation fails is prepared again
//! from the same observations, so the tracker must return to where it was.

use std::collections::{HashMap, HashSet};

/// Key sets of relists in progress, with an undo log for the current batch.
#[derive(Default)]
pub struct RelistTracker {
    open: HashMap<String, Open>,
    undo: Vec<Undo>,
}

/// One relist in progress.
#[derive(Default)]
struct Open {
    seen: HashSet<Vec<u8>>,
    /// Whether its `ResyncBegin` marker is in the log already; kube emits
    /// `Init` again on every failed list, and the log needs one marker.
    begin_recorded: bool,
}

enum Undo {
    Restore(String, Option<Open>),
    Unsee(String, Vec<u8>),
    SetBeginRecorded(String, bool),
}

impl RelistTracker {
    /// A relist of `type_key` starts; returns whether a `ResyncBegin` marker
    /// should be recorded (none is open in the log for this type).
    pub fn begin(&mut self, type_key: &str) -> bool {
        let prev = self.open.remove(type_key);
        let recorded = prev.as_ref().is_some_and(|p| p.begin_recorded);
        self.undo.push(Undo::Restore(type_key.to_owned(), prev));
        self.open.insert(
            type_key.to_owned(),
            Open {
                seen: HashSet::new(),
                begin_recorded: recorded,
            },
        );
        !recorded
    }

    /// Notes that the `ResyncBegin` marker of `type_key` was recorded.
    pub fn mark_begin_recorded(&mut self, type_key: &str) {
        if let Some(o) = self.open.get_mut(type_key) {
            self.undo.push(Undo::SetBeginRecorded(
                type_key.to_owned(),
                o.begin_recorded,
            ));
            o.begin_recorded = true;
        }
    }

    /// The relist of `type_key` delivered `key`. Ignored when no relist is
    /// open (kube emits `InitApply` only between `Init` and `InitDone`).
    pub fn seen(&mut self, type_key: &str, key: Vec<u8>) {
        if let Some(o) = self.open.get_mut(type_key)
            && o.seen.insert(key.clone())
        {
            self.undo.push(Undo::Unsee(type_key.to_owned(), key));
        }
    }

    /// Whether a relist of `type_key` is open.
    #[must_use]
    pub fn is_open(&self, type_key: &str) -> bool {
        self.open.contains_key(type_key)
    }

    /// The relist of `type_key` is complete: returns the keys it delivered,
    /// or `None` if none was open.
    pub fn end(&mut self, type_key: &str) -> Option<HashSet<Vec<u8>>> {
        let open = self.open.remove(type_key)?;
        let seen = open.seen.clone();
        self.undo
            .push(Undo::Restore(type_key.to_owned(), Some(open)));
        Some(seen)
    }

    /// Drops any relist of `type_key` (its type is gone).
    pub fn discard(&mut self, type_key: &str) {
        let prev = self.open.remove(type_key);
        self.undo.push(Undo::Restore(type_key.to_owned(), prev));
    }

    /// The batch committed: its changes are final.
    pub fn commit(&mut self) {
        self.undo.clear();
    }

    /// The batch failed: undo its changes.
    pub fn rollback(&mut self) {
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::Restore(t, prev) => {
                    match prev {
                        Some(p) => self.open.insert(t, p),
                        None => self.open.remove(&t),
                    };
                }
                Undo::Unsee(t, k) => {
                    if let Some(o) = self.open.get_mut(&t) {
                        o.seen.remove(&k);
                    }
                }
                Undo::SetBeginRecorded(t, v) => {
                    if let Some(o) = self.open.get_mut(&t) {
                        o.begin_recorded = v;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_init_discards_partial_set() {
        let mut t = RelistTracker::default();
        assert!(t.begin("cm"));
        t.mark_begin_recorded("cm");
        t.seen("cm", b"a".to_vec());
        // The list failed and kube starts over: the partial set must go,
        // and no second begin marker is needed.
        assert!(!t.begin("cm"));
        t.seen("cm", b"b".to_vec());
        let seen = t.end("cm").unwrap();
        assert!(seen.contains(b"b".as_slice()));
        assert!(!seen.contains(b"a".as_slice()));
        assert!(t.end("cm").is_none());
    }

    #[test]
    fn rollback_restores_the_previous_batch_end() {
        let mut t = RelistTracker::default();
        t.begin("cm");
        t.mark_begin_recorded("cm");
        t.seen("cm", b"a".to_vec());
        t.commit();
        t.seen("cm", b"b".to_vec());
        let _ = t.end("cm").unwrap();
        t.begin("x");
        t.rollback();
        assert!(!t.is_open("x"));
        let seen = t.end("cm").unwrap();
        assert_eq!(seen.len(), 1);
        assert!(seen.contains(b"a".as_slice()));
    }
}
