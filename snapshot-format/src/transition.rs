//! What events do to a state: the one definition every fold uses.
//!
//! Three folds turn events into a state, each shaped for its job:
//! [`State::apply`](crate::State::apply) applies them one by one; the
//! daemon's snapshot fold keeps one [`KeyOp`] per key in memory and spills
//! them to sorted runs; the restore side reduces contiguous runs of events
//! in parallel, newest first, and applies the reductions in log order. They
//! all read the rules from here, so a snapshot and a point-in-time restore
//! of the same moment hold the same objects:
//!
//! - [`Effect`]: what one event does to its key ([`Change`]) and to its
//!   type's list resourceVersion;
//! - [`uid_matches`]: which stored object a deletion removes (a deletion of
//!   an object that was since recreated under another uid leaves the new
//!   one);
//! - [`KeyOp`]: what a sequence of events does to one key relative to the
//!   object the key held before it (the base): put an object, remove it,
//!   remove it if its uid is one of a few, or nothing. Later events compose
//!   onto it ([`KeyOp::apply`]), earlier ones under it
//!   ([`KeyOp::apply_before`]), two ops compose ([`KeyOp::compose`], which is
//!   associative), and [`KeyOp::resolve`] applies an op to a base;
//! - [`note_type`]: how an event updates its type's entry.
//!
//! Sequence numbers are the callers' business: each event is applied once,
//! in log order (or, newest first, in reverse log order).

use std::collections::BTreeMap;

use crate::event::{EventKind, EventRecord, ResourceType};
use crate::segment::{EventKindView, EventView};
use crate::snapshot::{SnapshotObject, TypeEntry};
use crate::state::{StateObject, TypeKey};

/// Whether a deletion naming uid `deleted` removes a stored object with uid
/// `stored`: the same uid, or either unknown (empty). Another uid means the
/// object was deleted and recreated; the deletion is about the old one.
#[must_use]
pub fn uid_matches(stored: &str, deleted: &str) -> bool {
    stored == deleted || stored.is_empty() || deleted.is_empty()
}

/// An object a key can hold. The transition reads only its uid.
pub trait HasUid {
    /// The object's uid; empty when unknown.
    fn uid(&self) -> &str;
}

impl HasUid for StateObject {
    fn uid(&self) -> &str {
        &self.uid
    }
}

impl HasUid for SnapshotObject {
    fn uid(&self) -> &str {
        &self.uid
    }
}

/// What one event does to its object's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'e> {
    /// `Applied`: the key holds the event's object, which has this uid.
    Put(&'e str),
    /// `Deleted` or `DeletedInferred`: the stored object goes if its uid
    /// matches this one ([`uid_matches`]).
    Delete(&'e str),
    /// A resync marker: no object is touched.
    Keep,
}

impl Change<'_> {
    /// Applies this one change to `map` at `key`: an insert of `put()`, a
    /// removal, or nothing. The same as [`KeyOp::of`] then
    /// [`KeyOp::resolve_in`], without building the op.
    pub fn resolve_in<K: Ord, T: HasUid>(
        self,
        map: &mut BTreeMap<K, T>,
        key: K,
        put: impl FnOnce() -> T,
    ) {
        match self {
            Self::Put(_) => {
                map.insert(key, put());
            }
            Self::Delete(uid) => {
                if map.get(&key).is_some_and(|o| uid_matches(o.uid(), uid)) {
                    map.remove(&key);
                }
            }
            Self::Keep => {}
        }
    }
}

/// What one event does to a state, besides advancing its seq and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect<'e> {
    /// What happens to the event's key.
    pub change: Change<'e>,
    /// The list resourceVersion its type now has, if the event sets one:
    /// `Applied` and `Deleted` set the object's (the newest version the
    /// watch delivered), `ResyncEnd` the list's. `DeletedInferred` (found
    /// missing from a relist, at no version of its own) and `ResyncBegin`
    /// leave it.
    pub list_rv: Option<&'e str>,
}

/// An event's kind, read alike from a record and from a view.
enum Kind<'e> {
    Applied,
    Deleted,
    DeletedInferred,
    ResyncBegin,
    ResyncEnd(&'e str),
}

impl<'e> Effect<'e> {
    /// The rules, once for records and views.
    fn from_kind(kind: Kind<'e>, uid: &'e str, resource_version: &'e str) -> Self {
        match kind {
            Kind::Applied => Self {
                change: Change::Put(uid),
                list_rv: Some(resource_version),
            },
            Kind::Deleted => Self {
                change: Change::Delete(uid),
                list_rv: Some(resource_version),
            },
            Kind::DeletedInferred => Self {
                change: Change::Delete(uid),
                list_rv: None,
            },
            Kind::ResyncBegin => Self {
                change: Change::Keep,
                list_rv: None,
            },
            Kind::ResyncEnd(list_rv) => Self {
                change: Change::Keep,
                list_rv: Some(list_rv),
            },
        }
    }

    /// The effect of a record.
    #[must_use]
    pub fn of(e: &'e EventRecord) -> Self {
        let kind = match &e.kind {
            EventKind::Applied => Kind::Applied,
            EventKind::Deleted => Kind::Deleted,
            EventKind::DeletedInferred { .. } => Kind::DeletedInferred,
            EventKind::ResyncBegin { .. } => Kind::ResyncBegin,
            EventKind::ResyncEnd { list_rv } => Kind::ResyncEnd(list_rv),
        };
        Self::from_kind(kind, &e.uid, &e.resource_version)
    }

    /// The effect of a borrowed event.
    #[must_use]
    pub fn of_view(e: &EventView<'e>) -> Self {
        let kind = match e.kind {
            EventKindView::Applied => Kind::Applied,
            EventKindView::Deleted => Kind::Deleted,
            EventKindView::DeletedInferred { .. } => Kind::DeletedInferred,
            EventKindView::ResyncBegin { .. } => Kind::ResyncBegin,
            EventKindView::ResyncEnd { list_rv } => Kind::ResyncEnd(list_rv),
        };
        Self::from_kind(kind, e.uid, e.resource_version)
    }
}

/// Records an event of type `rtype` in `types`: the entry takes the newest
/// `rtype` (its version may change) and `list_rv` when the event sets one
/// ([`Effect::list_rv`]); a type first seen starts with an empty one.
pub fn note_type(
    types: &mut BTreeMap<TypeKey, TypeEntry>,
    rtype: &ResourceType,
    list_rv: Option<&str>,
) {
    let entry = types
        .entry((rtype.group.clone(), rtype.resource.clone()))
        .or_insert_with(|| TypeEntry {
            rtype: rtype.clone(),
            list_rv: String::new(),
        });
    entry.rtype.clone_from(rtype);
    if let Some(rv) = list_rv {
        entry.list_rv.clear();
        entry.list_rv.push_str(rv);
    }
}

/// What a sequence of events does to one key, relative to the object the
/// key held before them (the base).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOp<T> {
    /// The key holds this object, whatever the base was.
    Put(T),
    /// The key is empty, whatever the base was.
    Remove,
    /// The key is empty if the base's uid matches one of these uids, else it
    /// keeps the base. The uids are non-empty (a deletion without a uid
    /// matches every object: that is [`KeyOp::Remove`]) and distinct; none
    /// at all is the op of no event ([`KeyOp::keep`]).
    RemoveIf(Vec<String>),
}

impl<T> Default for KeyOp<T> {
    fn default() -> Self {
        Self::keep()
    }
}

/// Adds `uid` (non-empty) to a [`KeyOp::RemoveIf`] list unless it is there.
fn add_uid(uids: &mut Vec<String>, uid: &str) {
    if !uids.iter().any(|u| u == uid) {
        uids.push(uid.to_owned());
    }
}

impl<T> KeyOp<T> {
    /// The op of no event: the key keeps its base.
    #[must_use]
    pub const fn keep() -> Self {
        Self::RemoveIf(Vec::new())
    }

    /// The op of one deletion naming `uid`.
    #[must_use]
    pub fn deletion(uid: &str) -> Self {
        if uid.is_empty() {
            Self::Remove
        } else {
            Self::RemoveIf(vec![uid.to_owned()])
        }
    }

    /// Whether the result no longer depends on the base: events before
    /// these ones cannot change what the key ends up holding.
    #[must_use]
    pub fn is_settled(&self) -> bool {
        matches!(self, Self::Put(_) | Self::Remove)
    }
}

impl<T: HasUid> KeyOp<T> {
    /// The op of one change; `put` builds an `Applied`'s object.
    pub fn of(change: Change<'_>, put: impl FnOnce() -> T) -> Self {
        match change {
            Change::Put(_) => Self::Put(put()),
            Change::Delete(uid) => Self::deletion(uid),
            Change::Keep => Self::keep(),
        }
    }

    /// Whether this op empties a key whose base is `base`.
    #[must_use]
    pub fn removes(&self, base: &T) -> bool {
        match self {
            Self::Put(_) => false,
            Self::Remove => true,
            Self::RemoveIf(uids) => uids.iter().any(|u| uid_matches(base.uid(), u)),
        }
    }

    /// Composes a later change onto this op: the same as
    /// `self.compose(KeyOp::of(change, put))`, building `put()` only when
    /// it is kept.
    pub fn apply(&mut self, change: Change<'_>, put: impl FnOnce() -> T) {
        match change {
            Change::Put(_) => *self = Self::Put(put()),
            Change::Delete(uid) => match self {
                Self::Put(o) => {
                    if uid_matches(o.uid(), uid) {
                        *self = Self::Remove;
                    }
                }
                Self::Remove => {}
                Self::RemoveIf(_) if uid.is_empty() => *self = Self::Remove,
                Self::RemoveIf(uids) => add_uid(uids, uid),
            },
            Change::Keep => {}
        }
    }

    /// Composes an earlier change under this op: the same as
    /// `KeyOp::of(change, put).compose(self)`, building `put()` only when
    /// it is kept (a settled op ignores every earlier change). This is how
    /// a log is reduced newest first.
    pub fn apply_before(&mut self, change: Change<'_>, put: impl FnOnce() -> T) {
        let Self::RemoveIf(uids) = self else {
            return;
        };
        match change {
            Change::Put(uid) => {
                *self = if uids.iter().any(|u| uid_matches(uid, u)) {
                    Self::Remove
                } else {
                    Self::Put(put())
                };
            }
            Change::Delete("") => *self = Self::Remove,
            Change::Delete(uid) => add_uid(uids, uid),
            Change::Keep => {}
        }
    }

    /// This op followed by `later`. Associative, with [`KeyOp::keep`] as
    /// the identity: resolving the composition equals resolving `self` then
    /// `later`.
    #[must_use]
    pub fn compose(self, later: Self) -> Self {
        match (self, later) {
            (_, later @ (Self::Put(_) | Self::Remove)) => later,
            (Self::Put(o), later) => {
                if later.removes(&o) {
                    Self::Remove
                } else {
                    Self::Put(o)
                }
            }
            (Self::Remove, Self::RemoveIf(_)) => Self::Remove,
            (Self::RemoveIf(mut uids), Self::RemoveIf(more)) => {
                for u in &more {
                    add_uid(&mut uids, u);
                }
                Self::RemoveIf(uids)
            }
        }
    }

    /// What a key whose base is `base` holds after this op.
    #[must_use]
    pub fn resolve(self, base: Option<T>) -> Option<T> {
        match self {
            Self::Put(o) => Some(o),
            op => base.filter(|b| !op.removes(b)),
        }
    }

    /// [`KeyOp::resolve`] by reference.
    #[must_use]
    pub fn resolve_ref<'a>(&'a self, base: Option<&'a T>) -> Option<&'a T> {
        match self {
            Self::Put(o) => Some(o),
            op => base.filter(|b| !op.removes(b)),
        }
    }

    /// [`KeyOp::resolve`] on the entry `key` of `map`, in place.
    pub fn resolve_in<K: Ord>(self, map: &mut BTreeMap<K, T>, key: K) {
        match self {
            Self::Put(o) => {
                map.insert(key, o);
            }
            Self::Remove => {
                map.remove(&key);
            }
            op @ Self::RemoveIf(_) => {
                if map.get(&key).is_some_and(|b| op.removes(b)) {
                    map.remove(&key);
                }
            }
        }
    }
}
