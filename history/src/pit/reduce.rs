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
//! What the events do is [`rewind_format::transition`]'s, as for every
//! fold: each key's [`KeyOp`] takes the older events under it with
//! [`KeyOp::apply_before`]. Walking backwards, deletions newer than a key's
//! last `Applied` are collected first (`RemoveIf`); that `Applied` then
//! settles the key as `Remove` if one of them matches it, else as `Put`. A
//! key with only deletions in the run depends on the base, which the
//! `RemoveIf` carries to the merge ([`KeyOp::resolve_in`]).

use std::collections::HashMap;

use rewind_format::segment::EventView;
use rewind_format::transition::note_type;
use rewind_format::{Change, Effect, KeyOp, ObjectKey, ResourceType, State, StateObject};

/// One object's entry: its owned key (built once, when first met) and what
/// the run did to it.
#[derive(Debug)]
struct Slot {
    key: ObjectKey,
    op: KeyOp<StateObject>,
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
    /// Keyed by the event's group, resource, namespace and name, each
    /// length-prefixed ([`push_str`]), so a lookup borrows the event's
    /// strings instead of building an [`ObjectKey`].
    objects: HashMap<Box<[u8]>, Slot>,
    /// Keyed by the group and resource prefix of that key.
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
        let effect = Effect::of_view(e);
        // The type key is a prefix of the object key.
        self.buf.clear();
        push_str(&mut self.buf, e.rtype.group);
        push_str(&mut self.buf, e.rtype.resource);
        match self.types.get_mut(self.buf.as_slice()) {
            Some(t) => {
                if t.list_rv.is_none() {
                    t.list_rv = effect.list_rv.map(str::to_owned);
                }
            }
            None => {
                self.types.insert(
                    self.buf.as_slice().into(),
                    TypeSlot {
                        rtype: e.rtype.to_owned_type(),
                        list_rv: effect.list_rv.map(str::to_owned),
                    },
                );
            }
        }
        if effect.change == Change::Keep {
            return;
        }
        match e.namespace {
            Some(ns) => {
                self.buf.push(1);
                push_str(&mut self.buf, ns);
            }
            None => self.buf.push(0),
        }
        push_str(&mut self.buf, e.name);
        let put = || StateObject {
            uid: e.uid.to_owned(),
            resource_version: e.resource_version.to_owned(),
            object: e.object.to_vec(),
        };
        match self.objects.get_mut(self.buf.as_slice()) {
            // A settled key ignores older events at no cost.
            Some(slot) => slot.op.apply_before(effect.change, put),
            None => {
                let key = ObjectKey {
                    group: e.rtype.group.to_owned(),
                    resource: e.rtype.resource.to_owned(),
                    namespace: e.namespace.map(str::to_owned),
                    name: e.name.to_owned(),
                };
                let op = KeyOp::of(effect.change, put);
                self.objects
                    .insert(self.buf.as_slice().into(), Slot { key, op });
            }
        }
    }

    /// Applies this reduction to `state`, as `State::apply` would have
    /// applied the events one by one. Runs must be applied in log order.
    pub(super) fn apply_to(self, state: &mut State) {
        for t in self.types.into_values() {
            note_type(&mut state.types, &t.rtype, t.list_rv.as_deref());
        }
        for Slot { key, op } in self.objects.into_values() {
            op.resolve_in(&mut state.objects, key);
        }
        if let Some((seq, time)) = self.last {
            state.seq = seq;
            state.time_ms = time;
        }
    }
}
