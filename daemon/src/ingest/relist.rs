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
//! Keys carry the generation (batch) that first saw them, so undoing a batch
//! removes its keys without an undo entry (a copy of the key) per key.
//!
//! Memory: one entry per object of a type being relisted (the key without
//! its type prefix), freed when the relist ends. A relist of a type with no
//! recorded object (the first sync of a plane) tracks nothing: there is
//! nothing it could find deleted, and its set would be the largest of all.

use std::collections::HashMap;

/// Key sets of relists in progress, with an undo log for the current batch.
#[derive(Default)]
pub struct RelistTracker {
    open: HashMap<String, Open>,
    undo: Vec<Undo>,
    /// Generation of the batch being prepared; bumped by commit and
    /// rollback.
    generation: u64,
}

/// One relist in progress.
#[derive(Default)]
struct Open {
    /// Keys delivered (without the type prefix): the generation that first
    /// delivered each, and whether its object was in the state after it.
    seen: HashMap<Box<[u8]>, Seen>,
    /// Whether its `ResyncBegin` marker is in the log already; kube emits
    /// `Init` again on every failed list, and the log needs one marker.
    begin_recorded: bool,
    /// The generation whose undo log already forgets this relist's new keys.
    unsee_logged: Option<u64>,
    /// Whether keys are kept: false when the type had no recorded object
    /// as the relist began.
    tracked: bool,
}

/// One delivered key.
#[derive(Clone, Copy)]
struct Seen {
    generation: u64,
    in_state: bool,
}

enum Undo {
    Restore(String, Option<Open>),
    /// Forget the keys the current generation added to this type's relist.
    Unsee(String),
    SetBeginRecorded(String, bool),
}

/// A `state` key without its `type_key 0x00` prefix (the sets are per
/// type); a key without the prefix is kept whole.
fn suffix<'k>(type_key: &str, key: &'k [u8]) -> &'k [u8] {
    key.strip_prefix(type_key.as_bytes())
        .and_then(|k| k.strip_prefix(&[0u8]))
        .unwrap_or(key)
}

/// The keys a completed relist delivered; give it back with
/// [`RelistTracker::closed`] so a rollback can reopen the relist.
pub struct Delivered {
    type_key: String,
    open: Open,
}

impl Delivered {
    /// Whether the relist delivered `key` (a `state` key of its type).
    #[must_use]
    pub fn contains(&self, key: &[u8]) -> bool {
        self.open.seen.contains_key(suffix(&self.type_key, key))
    }

    /// Number of keys delivered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.open.seen.len()
    }

    /// Number of keys delivered whose object was in the state after its
    /// delivery: when the type's state holds exactly this many objects, the
    /// relist delivered all of them and nothing was deleted meanwhile.
    #[must_use]
    pub fn in_state(&self) -> u64 {
        let n = self.open.seen.values().filter(|s| s.in_state).count();
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// Whether the relist kept its keys; an untracked relist began with no
    /// recorded object of its type, so it can have missed no deletion.
    #[must_use]
    pub fn tracked(&self) -> bool {
        self.open.tracked
    }

    /// Whether no key was delivered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.open.seen.is_empty()
    }
}

impl RelistTracker {
    /// A relist of `type_key` starts; returns whether a `ResyncBegin` marker
    /// should be recorded (none is open in the log for this type). `track`
    /// is false when the type has no recorded object: then nothing can be
    /// missing at its end and no key is kept.
    pub fn begin(&mut self, type_key: &str, track: bool) -> bool {
        let prev = self.open.remove(type_key);
        let recorded = prev.as_ref().is_some_and(|p| p.begin_recorded);
        self.undo.push(Undo::Restore(type_key.to_owned(), prev));
        self.open.insert(
            type_key.to_owned(),
            Open {
                begin_recorded: recorded,
                tracked: track,
                ..Open::default()
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

    /// The relist of `type_key` delivered `key`, whose object is in the
    /// state after it (`in_state`) or not (not selected, too large).
    /// Ignored when no relist is open (kube emits `InitApply` only between
    /// `Init` and `InitDone`).
    pub fn seen(&mut self, type_key: &str, key: &[u8], in_state: bool) {
        let Some(o) = self.open.get_mut(type_key).filter(|o| o.tracked) else {
            return;
        };
        let k = suffix(type_key, key);
        if o.seen.contains_key(k) {
            return;
        }
        o.seen.insert(
            k.into(),
            Seen {
                generation: self.generation,
                in_state,
            },
        );
        if o.unsee_logged != Some(self.generation) {
            o.unsee_logged = Some(self.generation);
            self.undo.push(Undo::Unsee(type_key.to_owned()));
        }
    }

    /// Keys the open relist of `type_key` holds (0 when none is open).
    #[cfg(test)]
    pub fn keys_kept(&self, type_key: &str) -> usize {
        self.open.get(type_key).map_or(0, |o| o.seen.len())
    }

    /// Whether a relist of `type_key` is open.
    #[must_use]
    pub fn is_open(&self, type_key: &str) -> bool {
        self.open.contains_key(type_key)
    }

    /// The relist of `type_key` is complete: returns the keys it delivered,
    /// or `None` if none was open. Hand them back with
    /// [`RelistTracker::closed`] once used.
    pub fn end(&mut self, type_key: &str) -> Option<Delivered> {
        let open = self.open.remove(type_key)?;
        Some(Delivered {
            type_key: type_key.to_owned(),
            open,
        })
    }

    /// Takes back what [`RelistTracker::end`] returned, so that a rollback
    /// of this batch reopens the relist.
    pub fn closed(&mut self, d: Delivered) {
        self.undo.push(Undo::Restore(d.type_key, Some(d.open)));
    }

    /// Drops any relist of `type_key` (its type is gone).
    pub fn discard(&mut self, type_key: &str) {
        let prev = self.open.remove(type_key);
        self.undo.push(Undo::Restore(type_key.to_owned(), prev));
    }

    /// The batch committed: its changes are final.
    pub fn commit(&mut self) {
        self.undo.clear();
        self.generation = self.generation.wrapping_add(1);
    }

    /// The batch failed: undo its changes.
    pub fn rollback(&mut self) {
        let generation = self.generation;
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::Restore(t, prev) => {
                    match prev {
                        Some(p) => self.open.insert(t, p),
                        None => self.open.remove(&t),
                    };
                }
                Undo::Unsee(t) => {
                    if let Some(o) = self.open.get_mut(&t) {
                        o.seen.retain(|_, s| s.generation != generation);
                    }
                }
                Undo::SetBeginRecorded(t, v) => {
                    if let Some(o) = self.open.get_mut(&t) {
                        o.begin_recorded = v;
                    }
                }
            }
        }
        // The batch is prepared again as a new generation, which logs its
        // own `Unsee`s.
        self.generation = self.generation.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_init_discards_partial_set() {
        let mut t = RelistTracker::default();
        assert!(t.begin("cm", true));
        t.mark_begin_recorded("cm");
        t.seen("cm", b"cm\0ns\0a", true);
        // The list failed and kube starts over: the partial set must go,
        // and no second begin marker is needed.
        assert!(!t.begin("cm", true));
        t.seen("cm", b"cm\0ns\0b", true);
        let seen = t.end("cm").unwrap();
        assert!(seen.contains(b"cm\0ns\0b"));
        assert!(!seen.contains(b"cm\0ns\0a"));
        assert!(t.end("cm").is_none());
    }

    #[test]
    fn rollback_restores_the_previous_batch_end() {
        let mut t = RelistTracker::default();
        t.begin("cm", true);
        t.mark_begin_recorded("cm");
        t.seen("cm", b"cm\0ns\0a", true);
        t.commit();
        t.seen("cm", b"cm\0ns\0b", true);
        let d = t.end("cm").unwrap();
        t.closed(d);
        t.begin("x", true);
        t.rollback();
        assert!(!t.is_open("x"));
        let seen = t.end("cm").unwrap();
        assert_eq!(seen.len(), 1);
        assert!(seen.contains(b"cm\0ns\0a"));
    }

    #[test]
    fn every_failed_attempt_forgets_only_its_own_keys() {
        let mut t = RelistTracker::default();
        t.begin("cm", true);
        t.seen("cm", b"cm\0ns\0a", true);
        t.commit();
        // Two failed attempts at the next batch, then one that commits.
        t.seen("cm", b"cm\0ns\0a", true);
        t.seen("cm", b"cm\0ns\0b", true);
        t.rollback();
        t.seen("cm", b"cm\0ns\0c", true);
        t.rollback();
        t.seen("cm", b"cm\0ns\0b", true);
        t.commit();
        t.seen("cm", b"cm\0ns\0d", true);
        t.rollback();
        let seen = t.end("cm").unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen.contains(b"cm\0ns\0a"), "committed in the first batch");
        assert!(
            seen.contains(b"cm\0ns\0b"),
            "committed by the retried batch"
        );
        assert!(!seen.contains(b"cm\0ns\0c"));
        assert!(!seen.contains(b"cm\0ns\0d"));
        // Keys are compared without their type prefix, whatever the type.
        assert!(!seen.contains(b"other\0ns\0a"));
    }
}
