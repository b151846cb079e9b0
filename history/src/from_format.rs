//! From the format crate's folded [`rewind_format::State`] (snapshot +
//! events at a point) to a [`DesiredState`]: the last step of a store
//! reader's [`StateSource::state_at`](crate::StateSource::state_at).

use std::collections::HashMap;

use serde_json::Value;

use crate::state::{DesiredState, ResourceType, StateError, TypedKey};

/// Errors converting a folded state.
#[derive(Debug, thiserror::Error)]
pub enum FromFormatError {
    /// An object's recorded bytes are not JSON, or nest deeper than
    /// [`crate::deep::MAX_DEPTH`].
    #[error("{group}/{resource} {namespace:?}/{name}: recorded object is not readable: {source}")]
    Json {
        /// API group.
        group: String,
        /// Plural resource.
        resource: String,
        /// Namespace.
        namespace: Option<String>,
        /// Name.
        name: String,
        /// Parser error.
        source: crate::deep::Error,
    },
    /// An object whose type the state does not list.
    #[error("{group}/{resource}: objects of a type the state does not describe")]
    UnknownType {
        /// API group.
        group: String,
        /// Plural resource.
        resource: String,
    },
    /// An object without a usable key.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Every object's key and JSON, in key order, for the parallel passes.
pub fn object_slices(state: &rewind_format::State) -> Vec<(&rewind_format::ObjectKey, &[u8])> {
    state
        .objects
        .iter()
        .map(|(k, o)| (k, o.object.as_slice()))
        .collect()
}

/// Converts a folded state into a desired state.
///
/// Parsing every object's JSON into a `Value` is most of the cost of a
/// state command on a large plane (more than the fold), so it runs on every
/// core; the map is then built in one sorted pass. The result, and the
/// first error in key order, are those of inserting the objects one by one.
pub fn desired_from_format(state: &rewind_format::State) -> Result<DesiredState, FromFormatError> {
    let types = resource_types(state);
    let objects = object_slices(state);
    let parsed = par_map(&objects, |(k, bytes)| -> Result<_, FromFormatError> {
        let rtype = type_of(&types, k)?;
        let obj = parse_object(k, bytes)?;
        let key = TypedKey::of(rtype, &obj)?;
        Ok((key, obj))
    });
    let entries = parsed.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(DesiredState::from_entries(entries))
}

/// Each recorded type by `(group, resource)`, for looking up objects' types.
pub fn resource_types(state: &rewind_format::State) -> HashMap<(&str, &str), &ResourceType> {
    state
        .types
        .iter()
        .map(|((g, r), e)| ((g.as_str(), r.as_str()), &e.rtype))
        .collect()
}

/// The type of the object at `k`.
pub fn type_of<'s>(
    types: &HashMap<(&'s str, &'s str), &'s ResourceType>,
    k: &'s rewind_format::ObjectKey,
) -> Result<&'s ResourceType, FromFormatError> {
    types
        .get(&(k.group.as_str(), k.resource.as_str()))
        .copied()
        .ok_or_else(|| FromFormatError::UnknownType {
            group: k.group.clone(),
            resource: k.resource.clone(),
        })
}

/// The recorded object at `k` as a JSON value; objects nested deeper than
/// serde_json's limit are read too (see [`crate::deep`]).
pub fn parse_object(k: &rewind_format::ObjectKey, bytes: &[u8]) -> Result<Value, FromFormatError> {
    crate::deep::parse(bytes).map_err(|source| FromFormatError::Json {
        group: k.group.clone(),
        resource: k.resource.clone(),
        namespace: k.namespace.clone(),
        name: k.name.clone(),
        source,
    })
}

/// `f` over `items` on every core, results in input order.
pub fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    // Below this a thread costs more than it saves.
    const MIN_CHUNK: usize = 512;
    let chunk = items.len().div_ceil(workers).max(MIN_CHUNK);
    if items.len() <= chunk {
        return items.iter().map(&f).collect();
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                // The workers only parse; a panic there is a bug, and it
                // must not be swallowed.
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rewind_format::event::{EventKind, EventRecord};

    fn event(seq: u64, name: &str, kind: EventKind) -> EventRecord {
        EventRecord {
            seq,
            observed_at_ms: 1000 + i64::try_from(seq).unwrap(),
            cluster_id: "c".into(),
            rtype: ResourceType {
                group: String::new(),
                version: "v1".into(),
                resource: "configmaps".into(),
                kind: "ConfigMap".into(),
                namespaced: true,
            },
            namespace: Some("ns".into()),
            name: name.into(),
            uid: format!("u-{name}"),
            resource_version: seq.to_string(),
            kind,
            object: serde_json::to_vec(&serde_json::json!({
                "metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}"), "resourceVersion": seq.to_string()},
                "data": {"seq": seq.to_string()}
            }))
            .unwrap(),
        }
    }

    #[test]
    fn folded_events_become_a_desired_state() {
        let mut s = rewind_format::State::new("c");
        s.apply(&event(1, "a", EventKind::Applied));
        s.apply(&event(2, "b", EventKind::Applied));
        s.apply(&event(3, "a", EventKind::Applied));
        s.apply(&event(4, "b", EventKind::Deleted));
        let d = desired_from_format(&s).unwrap();
        assert_eq!(d.len(), 1);
        let (k, o) = d.iter().next().unwrap();
        assert_eq!(k.to_string(), "configmaps/ns/a");
        assert_eq!(o["data"]["seq"], "3");
    }
}
