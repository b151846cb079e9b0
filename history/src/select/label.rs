//! Kubernetes label selectors (`matchLabels` + `matchExpressions`), as
//! ResourceSets write them, evaluated against an object's labels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// A label selector, in the API's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Every listed label must be present with this value.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Every expression must hold.
    #[serde(default)]
    pub match_expressions: Vec<LabelExpression>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelExpression {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` / `NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A validated expression.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

/// A validated selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompiledLabelSelector {
    labels: BTreeMap<String, String>,
    exprs: Vec<(String, Op)>,
}

impl LabelSelector {
    /// Validates the selector the way the API server would
    /// (`metav1.LabelSelectorAsSelector`).
    pub fn compile(&self) -> Result<CompiledLabelSelector> {
        let mut exprs = Vec::with_capacity(self.match_expressions.len());
        for e in &self.match_expressions {
            if e.key.is_empty() {
                return Err(Error::Invalid(
                    "labelSelectors: an expression has an empty key".into(),
                ));
            }
            let op = match e.operator.as_str() {
                "In" | "NotIn" if e.values.is_empty() => {
                    return Err(Error::Invalid(format!(
                        "labelSelectors: operator {} on key {:?} needs values",
                        e.operator, e.key
                    )));
                }
                "In" => Op::In(e.values.clone()),
                "NotIn" => Op::NotIn(e.values.clone()),
                "Exists" | "DoesNotExist" if !e.values.is_empty() => {
                    return Err(Error::Invalid(format!(
                        "labelSelectors: operator {} on key {:?} takes no values",
                        e.operator, e.key
                    )));
                }
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => {
                    return Err(Error::Invalid(format!(
                        "labelSelectors: unknown operator {other:?} (expected In, NotIn, Exists or DoesNotExist)"
                    )));
                }
            };
            exprs.push((e.key.clone(), op));
        }
        Ok(CompiledLabelSelector {
            labels: self.match_labels.clone(),
            exprs,
        })
    }
}

impl CompiledLabelSelector {
    /// Whether `labels` satisfy the selector. `NotIn` matches objects
    /// without the label, as in Kubernetes.
    #[must_use]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.exprs.iter().all(|(k, op)| {
                let v = labels.get(k);
                match op {
                    Op::In(vals) => v.is_some_and(|v| vals.contains(v)),
                    Op::NotIn(vals) => v.is_none_or(|v| !vals.contains(v)),
                    Op::Exists => v.is_some(),
                    Op::DoesNotExist => v.is_none(),
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelExpression {
        LabelExpression {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn operators_follow_kubernetes() {
        let sel = LabelSelector {
            match_labels: labels(&[("app", "x")]),
            match_expressions: vec![
                expr("owner", "NotIn", &["helm"]),
                expr("tier", "In", &["a", "b"]),
                expr("env", "Exists", &[]),
                expr("tmp", "DoesNotExist", &[]),
            ],
        }
        .compile()
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "x"), ("tier", "a"), ("env", "")])));
        assert!(!sel.matches(&labels(&[
            ("app", "x"),
            ("tier", "a"),
            ("env", ""),
            ("owner", "helm")
        ])));
        assert!(sel.matches(&labels(&[
            ("app", "x"),
            ("tier", "b"),
            ("env", ""),
            ("owner", "me")
        ])));
        assert!(!sel.matches(&labels(&[("app", "x"), ("tier", "c"), ("env", "")])));
        assert!(!sel.matches(&labels(&[("app", "x"), ("tier", "a")])));
        assert!(!sel.matches(&labels(&[
            ("app", "x"),
            ("tier", "a"),
            ("env", ""),
            ("tmp", "1")
        ])));
        assert!(!sel.matches(&labels(&[("app", "y"), ("tier", "a"), ("env", "")])));
    }

    #[test]
    fn invalid_selectors_are_rejected() {
        for e in [
            expr("k", "In", &[]),
            expr("k", "Exists", &["v"]),
            expr("k", "Like", &["v"]),
            expr("", "Exists", &[]),
        ] {
            let s = LabelSelector {
                match_labels: BTreeMap::new(),
                match_expressions: vec![e],
            };
            assert!(s.compile().is_err());
        }
    }
}
