//! Built-in resource sets.
//!
//! - `rancher`: Rancher Backups' default ResourceSet for Rancher 2.9, from
//!   the YAML files it ships (embedded unchanged, see `presets/README.md`).
//! - `everything`: every resource type that can be listed and watched.
//!
//! The `rancher` preset also carries reference rules
//! ([`rancher_references`], from `presets/rancher-references.yaml`): which
//! of Rancher's types name which, so a restore writes the named ones first.

use serde::{Deserialize, Serialize};

use super::{Error, ResourceSelector, ResourceSet, Result};

/// The `rancher` preset's files, in the order the chart's glob yields them.
pub const RANCHER_FILES: &[(&str, &str)] = &[
    ("aks.yaml", include_str!("../../presets/rancher/aks.yaml")),
    ("eks.yaml", include_str!("../../presets/rancher/eks.yaml")),
    (
        "elemental.yaml",
        include_str!("../../presets/rancher/elemental.yaml"),
    ),
    (
        "fleet.yaml",
        include_str!("../../presets/rancher/fleet.yaml"),
    ),
    ("gke.yaml", include_str!("../../presets/rancher/gke.yaml")),
    (
        "provisioningv2.yaml",
        include_str!("../../presets/rancher/provisioningv2.yaml"),
    ),
    (
        "rancher-operator.yaml",
        include_str!("../../presets/rancher/rancher-operator.yaml"),
    ),
    (
        "rancher.yaml",
        include_str!("../../presets/rancher/rancher.yaml"),
    ),
];

/// Names of the built-in presets.
pub const PRESETS: &[&str] = &["rancher", "everything"];

/// The selectors of the `rancher` preset.
pub fn rancher_selectors() -> Result<Vec<ResourceSelector>> {
    let mut out = Vec::new();
    for (name, text) in RANCHER_FILES {
        let mut sels: Vec<ResourceSelector> =
            serde_saphyr::from_str(text).map_err(|e| Error::Preset {
                name,
                message: e.to_string(),
            })?;
        out.append(&mut sels);
    }
    Ok(out)
}

/// A preset by name.
pub fn preset(name: &str) -> Result<ResourceSet> {
    match name {
        "rancher" => ResourceSet::compile(&rancher_selectors()?, "preset rancher"),
        "everything" => Ok(ResourceSet::everything()),
        other => Err(Error::UnknownPreset(other.to_owned())),
    }
}

/// A resource type by API group and kind, whatever its version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupKind {
    /// API group, empty for the core group.
    pub group: String,
    /// Kind.
    pub kind: String,
}

/// Objects of `referencing` name objects of `referenced`, which must exist
/// first (an admission webhook refuses them otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceRule {
    /// The type named.
    pub referenced: GroupKind,
    /// The types naming it.
    pub referencing: Vec<GroupKind>,
    /// Why, for people.
    pub because: String,
}

/// The `rancher` preset's reference rules file.
pub const RANCHER_REFERENCES: &str = include_str!("../../presets/rancher-references.yaml");

/// The `rancher` preset's reference rules.
pub fn rancher_references() -> Result<Vec<ReferenceRule>> {
    serde_saphyr::from_str(RANCHER_REFERENCES).map_err(|e| Error::Preset {
        name: "rancher-references.yaml",
        message: e.to_string(),
    })
}
