//! From the format crate's folded [`rewind_format::State`] (snapshot +
//! events at a point) to a [`DesiredState`]: the last step of a store
//! reader's [`StateSource::state_at`](crate::StateSource::state_at).

use serde_json::Value;

use crate::state::{DesiredState, ResourceType, StateError};

impl From<&rewind_format::event::ResourceType> for ResourceType {
    fn from(t: &rewind_format::event::ResourceType) -> Self {
        Self {
            group: t.group.clone(),
            version: t.version.clone(),
            resource: t.resource.clone(),
            kind: t.kind.clone(),
            namespaced: t.namespaced,
        }
    }
}

/// Errors converting a folded state.
#[derive(Debug, thiserror::Error)]
pub enum FromFormatError {
    /// An object's recorded bytes are not JSON.
    #[error("{group}/{resource} {namespace:?}/{name}: recorded object is not JSON: {source}")]
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
        source: serde_json::Error,
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

/// Converts a folded state into a desired state.
pub fn desired_from_format(state: &rewind_format::State) -> Result<DesiredState, FromFormatError> {
    let mut out = DesiredState::new();
    for (k, o) in &state.objects {
        let entry = state
            .types
            .get(&(k.group.clone(), k.resource.clone()))
            .ok_or_else(|| FromFormatError::UnknownType {
                group: k.group.clone(),
                resource: k.resource.clone(),
            })?;
        let obj: Value =
            serde_json::from_slice(&o.object).map_err(|source| FromFormatError::Json {
                group: k.group.clone(),
                resource: k.resource.clone(),
                namespace: k.namespace.clone(),
                name: k.name.clone(),
                source,
            })?;
        out.insert(&ResourceType::from(&entry.rtype), obj)?;
    }
    Ok(out)
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
            rtype: rewind_format::event::ResourceType {
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
