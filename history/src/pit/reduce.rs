//! One worker's reduction of a contiguous run of events to one change per
//! object, reading the run newest first.
//!
//! Only the last version of an object before the point matters, so a
//! worker walks its blocks and their events backwards: the first `Applied`
//! it meets for a key settles that key, and every older event for it costs
//! one hash lookup. Events are borrowed [`EventView`]s into the
//! decompressed block, so nothing is copied or allocated per event; only a
//! settling `Applied` copies its object out, once per key.
//!
//! The result keeps `State::apply`'s semantics exactly (the model tests
//! check it against the one-by-one fold): a deletion removes the object only
//! when the uids agree (or either is empty). Walking backwards, the
//! deletions newer than a key's last `Applied` are collected first; that
//! `Applied` is then `Gone` if one of them matches it, else `Put`. A key with
//! only deletions in the run depends on the base, which
//! [`Delta::DeleteIf`] carries to the merge.

use std::collections::HashMap;

use rewind_format::segment::{EventKindView, EventView};
use rewind_format::{ObjectKey, ResourceType, State, StateObject, TypeEntry};

/// What a run of events did to one object, independently of the base.
#[derive(Debug)]
enum Delta {
    /// The object holds this value.
    Put(StateObject),
    /// The object is gone.
    Gone,
    /// Only deletions so far (newest first): the base object goes if its
    /// uid is one of these, or if any deletion (or the object) had no uid.
    /// While walking, this is also the "not settled yet" state.
    DeleteIf { any: bool, uids: Vec<String> },
}

impl Delta {
    fn deletion(uid: &str) -> Self {
        if uid.is_empty() {
            Self::DeleteIf {
                any: true,
                uids: Vec::new(),
            }
        } else {
            Self::DeleteIf {
                any: false,
                uids: vec![uid.to_owned()],
            }
        }
    }
}

/// One object's entry: its owned key (built once, when first met) and what
/// the run did to it.
#[derive(Debug)]
struct Slot {
    key: ObjectKey,
    delta: Delta,
}

/// One type's entry: the newest `rtype`, and the newest list resourceVersion
/// an event set.
#[derive(Debug)]
struct TypeSlot {
    rtype: ResourceType,
    list_rv: Option<String>,
}

/// A worker's reduction of its run of events.
#[derive(Debug, Default)]
pub(super) struct Reduced {
    /// Keyed by [`encode_key`] bytes, so a lookup borrows the event's
    /// strings instead of building an [`ObjectKey`].
    objects: HashMap<Box<[u8]>, Slot>,
    /// Keyed by the type prefix of [`encode_key`].
    types: HashMap<Box<[u8]>, TypeSlot>,
    /// Seq and time of the newest event taken.
    last: Option<(u64, i64)>,
    /// Events taken.
    pub(super) events: u64,
    /// Reused key buffer.
    buf: Vec<u8>,
}

/// Appends `s` length-prefixed, so distinct field tuples never encode alike.
fn push_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&s.len().to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

impl Reduced {
    /// Takes one event. Events must come newest first.
    pub(super) fn push_newest_first(&mut self, e: &EventView<'_>) {
        if self.last.is_none() {
            self.last = Some((e.seq, e.observed_at_ms));
        }
        self.events += 1;
        let list_rv = match e.kind {
            EventKindView::Applied | EventKindView::Deleted => Some(e.resource_version),
            EventKindView::ResyncEnd { list_rv } => Some(list_rv),
            EventKindView::DeletedInferred { .. } | EventKindView::ResyncBegin { .. } => None,
        };
        // The type key is a prefix of the object key.
        self.buf.clear();
        push_str(&mut self.buf, e.rtype.group);
        push_str(&mut self.buf, e.rtype.resource);
        match self.types.get_mut(self.buf.as_slice()) {
            Some(t) => {
                if t.list_rv.is_none() {
                    t.list_rv = list_rv.map(str::to_owned);
                }
            }
            None => {
                self.types.insert(
                    self.buf.as_slice().into(),
                    TypeSlot {
                        rtype: e.rtype.to_owned_type(),
                        list_rv: list_rv.map(str::to_owned),
                    },
                );
            }
        }
        let deleting = match e.kind {
            EventKindView::Applied => false,
            EventKindView::Deleted | EventKindView::DeletedInferred { .. } => true,
            EventKindView::ResyncBegin { .. } | EventKindView::ResyncEnd { .. } => return,
        };
        match e.namespace {
            Some(ns) => {
                self.buf.push(1);
                push_str(&mut self.buf, ns);
            }
            None => self.buf.push(0),
        }
        push_str(&mut self.buf, e.name);
        let put = || {
            Delta::Put(StateObject {
                uid: e.uid.to_owned(),
                resource_version: e.resource_version.to_owned(),
                object: e.object.to_vec(),
            })
        };
        match self.objects.get_mut(self.buf.as_slice()) {
            // Settled by a newer Applied: older events do not matter.
            Some(Slot {
                delta: Delta::Put(_) | Delta::Gone,
                ..
            }) => {}
            Some(Slot {
                delta: d @ Delta::DeleteIf { .. },
                ..
            }) => {
                let Delta::DeleteIf { any, uids } = &mut *d else {
                    return;
                };
                if deleting {
                    if e.uid.is_empty() {
                        *any = true;
                    } else if !uids.iter().any(|u| u == e.uid) {
                        uids.push(e.uid.to_owned());
                    }
                } else if *any || e.uid.is_empty() || uids.iter().any(|u| u == e.uid) {
                    // A newer deletion matches this version.
                    *d = Delta::Gone;
                } else {
                    *d = put();
                }
            }
            None => {
                let delta = if deleting {
                    Delta::deletion(e.uid)
                } else {
                    put()
                };
                let key = ObjectKey {
                    group: e.rtype.group.to_owned(),
                    resource: e.rtype.resource.to_owned(),
                    namespace: e.namespace.map(str::to_owned),
                    name: e.name.to_owned(),
                };
                self.objects
                    .insert(self.buf.as_slice().into(), Slot { key, delta });
            }
        }
    }

    /// Applies this reduction to `state`, as `State::apply` would have
    /// applied the events one by one. Runs must be applied in log order.
    pub(super) fn apply_to(self, state: &mut State) {
        for t in self.types.into_values() {
            let tk = (t.rtype.group.clone(), t.rtype.resource.clone());
            let entry = state.types.entry(tk).or_insert_with(|| TypeEntry {
                rtype: t.rtype.clone(),
                list_rv: String::new(),
            });
            entry.rtype = t.rtype;
            if let Some(rv) = t.list_rv {
                entry.list_rv = rv;
            }
        }
        for Slot { key, delta } in self.objects.into_values() {
            match delta {
                Delta::Put(o) => {
                    state.objects.insert(key, o);
                }
                Delta::Gone => {
                    state.objects.remove(&key);
                }
                Delta::DeleteIf { any, uids } => {
                    if state
                        .objects
                        .get(&key)
                        .is_some_and(|o| any || o.uid.is_empty() || uids.contains(&o.uid))
                    {
                        state.objects.remove(&key);
                    }
                }
            }
        }
        if let Some((seq, time)) = self.last {
            state.seq = seq;
            state.time_ms = time;
        }
    }
}
