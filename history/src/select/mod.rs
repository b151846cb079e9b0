//! What to record: ResourceSets with the semantics of Rancher Backups (BRO).
//!
//! A [`ResourceSelector`] names one API version and narrows it by kind, name,
//! namespace, labels and fields. Within one family the fields are ORed
//! (`kinds` or `kindsRegexp`; `resourceNames` or `resourceNameRegexp`;
//! `namespaces` or `namespaceRegexp`); across families they are ANDed; an
//! object is recorded if any selector of the set selects it.
//!
//! Faithful to BRO's collector (`pkg/resourcesets/collector.go`):
//! - `kindsRegexp` is matched, unanchored and case-sensitively, against both
//!   the Kind and the plural resource name; `kinds` compares exactly with
//!   either. With neither, every resource of the version is selected.
//! - `"."` as a regexp selects everything (even an empty namespace).
//! - Namespace filters apply to namespaced resources only.
//! - Subresources and resources that cannot be listed and watched are never
//!   recorded.
//!
//! Deliberate differences: `excludeKinds` applies whatever selected the kind
//! (BRO checks it only on the regexp path); `fieldSelectors` are evaluated
//! on the object (dotted paths, string equality) instead of by the server.
//!
//! Selection runs in the daemon, after the watch: watching with selectors
//! would make an object that stops matching arrive as a delete.

pub mod label;
pub mod preset;

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;
use rewind_format::ResourceType;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use label::{CompiledLabelSelector, LabelExpression, LabelSelector};

/// Errors of selection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A selector is invalid; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// A regexp does not compile.
    #[error("{field}: invalid regexp {pattern:?}: {source}")]
    Regex {
        /// The selector field.
        field: &'static str,
        /// The pattern.
        pattern: String,
        /// Why.
        source: regex::Error,
    },
    /// A preset name is unknown.
    #[error("unknown preset {0:?} (known: rancher, everything)")]
    UnknownPreset(String),
    /// A built-in preset does not parse (a build defect).
    #[error("preset {name}: {message}")]
    Preset {
        /// The preset file.
        name: &'static str,
        /// The parse error.
        message: String,
    },
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One ResourceSet selector, in BRO's shape (`resourceSelectors[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceSelector {
    /// `group/version`, or `v1` for the core group.
    pub api_version: String,
    /// Kinds or plural names, exact.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Regexp over Kind and plural name.
    #[serde(default)]
    pub kinds_regexp: Option<String>,
    /// Object names, exact.
    #[serde(default)]
    pub resource_names: Vec<String>,
    /// Regexp over object names.
    #[serde(default)]
    pub resource_name_regexp: Option<String>,
    /// Namespaces, exact.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Regexp over namespaces.
    #[serde(default)]
    pub namespace_regexp: Option<String>,
    /// Label selector.
    #[serde(default)]
    pub label_selectors: Option<LabelSelector>,
    /// Field path → required value.
    #[serde(default)]
    pub field_selectors: BTreeMap<String, String>,
    /// Kinds or plural names never selected.
    #[serde(default)]
    pub exclude_kinds: Vec<String>,
    /// Object names never selected.
    #[serde(default)]
    pub exclude_resource_name_regexp: Option<String>,
}

/// A regexp where `"."` means "anything".
#[derive(Debug, Clone)]
enum Pattern {
    Any,
    Re(Regex),
}

impl Pattern {
    fn compile(field: &'static str, p: &str) -> Result<Self> {
        if p == "." {
            return Ok(Self::Any);
        }
        Regex::new(p).map(Self::Re).map_err(|source| Error::Regex {
            field,
            pattern: p.to_owned(),
            source,
        })
    }

    fn is_match(&self, s: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Re(r) => r.is_match(s),
        }
    }
}

/// A validated selector.
#[derive(Debug, Clone)]
pub struct CompiledSelector {
    /// `None` matches every API version (the `everything` preset).
    api_version: Option<String>,
    kinds: Vec<String>,
    kinds_regexp: Option<Pattern>,
    names: Vec<String>,
    name_regexp: Option<Pattern>,
    namespaces: Vec<String>,
    namespace_regexp: Option<Pattern>,
    labels: Option<CompiledLabelSelector>,
    fields: Vec<(Vec<String>, String)>,
    exclude_kinds: Vec<String>,
    exclude_name_regexp: Option<Pattern>,
}

fn opt_pattern(field: &'static str, p: Option<&String>) -> Result<Option<Pattern>> {
    p.filter(|p| !p.is_empty())
        .map(|p| Pattern::compile(field, p))
        .transpose()
}

impl ResourceSelector {
    /// Validates the selector.
    pub fn compile(&self) -> Result<CompiledSelector> {
        if self.api_version.is_empty() || self.api_version.split('/').count() > 2 {
            return Err(Error::Invalid(format!(
                "apiVersion {:?} must be `version` or `group/version`",
                self.api_version
            )));
        }
        let mut fields = Vec::with_capacity(self.field_selectors.len());
        for (path, value) in &self.field_selectors {
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(Error::Invalid(format!(
                    "fieldSelectors: bad field path {path:?}"
                )));
            }
            fields.push((path.split('.').map(str::to_owned).collect(), value.clone()));
        }
        Ok(CompiledSelector {
            api_version: Some(self.api_version.clone()),
            kinds: self.kinds.clone(),
            kinds_regexp: opt_pattern("kindsRegexp", self.kinds_regexp.as_ref())?,
            names: self.resource_names.clone(),
            name_regexp: opt_pattern("resourceNameRegexp", self.resource_name_regexp.as_ref())?,
            namespaces: self.namespaces.clone(),
            namespace_regexp: opt_pattern("namespaceRegexp", self.namespace_regexp.as_ref())?,
            labels: self
                .label_selectors
                .as_ref()
                .map(LabelSelector::compile)
                .transpose()?,
            fields,
            exclude_kinds: self.exclude_kinds.clone(),
            exclude_name_regexp: opt_pattern(
                "excludeResourceNameRegexp",
                self.exclude_resource_name_regexp.as_ref(),
            )?,
        })
    }
}

/// The parts of an object selection looks at.
#[derive(Debug, Clone, Copy)]
pub struct ObjectView<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.namespace`, empty when cluster-scoped.
    pub namespace: &'a str,
    /// `metadata.labels`.
    pub labels: &'a BTreeMap<String, String>,
    /// The object as JSON (for field selectors).
    pub object: &'a Value,
}

impl CompiledSelector {
    /// A selector of every object of every type.
    #[must_use]
    pub fn everything() -> Self {
        Self {
            api_version: None,
            kinds: Vec::new(),
            kinds_regexp: None,
            names: Vec::new(),
            name_regexp: None,
            namespaces: Vec::new(),
            namespace_regexp: None,
            labels: None,
            fields: Vec::new(),
            exclude_kinds: Vec::new(),
            exclude_name_regexp: None,
        }
    }

    /// Whether the selector covers resource type `t`.
    #[must_use]
    pub fn selects_type(&self, t: &ResourceType) -> bool {
        if let Some(v) = &self.api_version
            && *v != t.api_version()
        {
            return false;
        }
        let named = |list: &[String]| list.iter().any(|k| *k == t.kind || *k == t.resource);
        if named(&self.exclude_kinds) {
            return false;
        }
        if self.kinds.is_empty() && self.kinds_regexp.is_none() {
            return true;
        }
        self.kinds_regexp
            .as_ref()
            .is_some_and(|p| p.is_match(&t.kind) || p.is_match(&t.resource))
            || named(&self.kinds)
    }

    /// Whether the selector selects an object of type `t` (which it covers).
    #[must_use]
    pub fn selects_object(&self, t: &ResourceType, o: &ObjectView<'_>) -> bool {
        if (!self.names.is_empty() || self.name_regexp.is_some())
            && !(self.names.iter().any(|n| n == o.name)
                || self
                    .name_regexp
                    .as_ref()
                    .is_some_and(|p| p.is_match(o.name)))
        {
            return false;
        }
        if t.namespaced
            && (!self.namespaces.is_empty() || self.namespace_regexp.is_some())
            && !(self.namespaces.iter().any(|n| n == o.namespace)
                || self
                    .namespace_regexp
                    .as_ref()
                    .is_some_and(|p| p.is_match(o.namespace)))
        {
            return false;
        }
        if let Some(l) = &self.labels
            && !l.matches(o.labels)
        {
            return false;
        }
        if !self
            .fields
            .iter()
            .all(|(path, want)| field_value(o, path) == *want)
        {
            return false;
        }
        if self
            .exclude_name_regexp
            .as_ref()
            .is_some_and(|p| p.is_match(o.name))
        {
            return false;
        }
        true
    }
}

/// Value of a field selector path, as the API server compares it (a string;
/// a missing field compares as empty).
fn field_value(o: &ObjectView<'_>, path: &[String]) -> String {
    match path {
        [m, n] if m == "metadata" && n == "name" => return o.name.to_owned(),
        [m, n] if m == "metadata" && n == "namespace" => return o.namespace.to_owned(),
        _ => {}
    }
    let mut v = o.object;
    for p in path {
        match v.get(p) {
            Some(next) => v = next,
            None => return String::new(),
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A compiled resource set: the union of its selectors.
#[derive(Debug, Clone, Default)]
pub struct ResourceSet {
    selectors: Vec<Arc<CompiledSelector>>,
}

/// The selectors that cover one type; selects objects of that type.
#[derive(Debug, Clone)]
pub struct TypeSelection {
    rtype: ResourceType,
    selectors: Vec<Arc<CompiledSelector>>,
}

impl TypeSelection {
    /// Whether any selector selects the object.
    #[must_use]
    pub fn selects(&self, o: &ObjectView<'_>) -> bool {
        self.selectors
            .iter()
            .any(|s| s.selects_object(&self.rtype, o))
    }

    /// The field-selector paths its selectors compare (dotted, split). When
    /// there are none, selection never reads [`ObjectView::object`], so a
    /// caller holding raw JSON need not parse the object at all.
    pub fn field_paths(&self) -> impl Iterator<Item = &[String]> {
        self.selectors
            .iter()
            .flat_map(|s| s.fields.iter().map(|(p, _)| p.as_slice()))
    }

    /// Number of selectors covering the type.
    #[must_use]
    pub fn selector_count(&self) -> usize {
        self.selectors.len()
    }
}

impl ResourceSet {
    /// Compiles selectors; errors name the selector's position.
    pub fn compile(selectors: &[ResourceSelector], origin: &str) -> Result<Self> {
        let mut out = Vec::with_capacity(selectors.len());
        for (i, s) in selectors.iter().enumerate() {
            let c = s.compile().map_err(|e| {
                Error::Invalid(format!(
                    "{origin} selector #{} ({}): {e}",
                    i + 1,
                    s.api_version
                ))
            })?;
            out.push(Arc::new(c));
        }
        Ok(Self { selectors: out })
    }

    /// A set that selects everything.
    #[must_use]
    pub fn everything() -> Self {
        Self {
            selectors: vec![Arc::new(CompiledSelector::everything())],
        }
    }

    /// Adds another set's selectors (sets are unions).
    pub fn extend(&mut self, other: Self) {
        self.selectors.extend(other.selectors);
    }

    /// Number of selectors.
    #[must_use]
    pub fn len(&self) -> usize {
        self.selectors.len()
    }

    /// Whether the set is empty (selects nothing).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.selectors.is_empty()
    }

    /// Whether a selector may cover types of `api_version` (`group/version`,
    /// or `v1` for the core group): one naming it, or one of every version.
    /// A group version the server fails to describe holds types this set
    /// would record when this is true.
    #[must_use]
    pub fn covers_api_version(&self, api_version: &str) -> bool {
        self.selectors
            .iter()
            .any(|s| s.api_version.as_deref().is_none_or(|v| v == api_version))
    }

    /// The selection for type `t`, or `None` if no selector covers it.
    #[must_use]
    pub fn for_type(&self, t: &ResourceType) -> Option<TypeSelection> {
        let selectors: Vec<_> = self
            .selectors
            .iter()
            .filter(|s| s.selects_type(t))
            .cloned()
            .collect();
        (!selectors.is_empty()).then(|| TypeSelection {
            rtype: t.clone(),
            selectors,
        })
    }
}

#[cfg(test)]
mod tests;
