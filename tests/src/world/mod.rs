//! A lived-in cluster to restore into: what real restores meet and an empty
//! control plane lacks.
//!
//! - controllers acting on what is written: start the control plane with
//!   [`crate::Options::controller_manager`] (garbage collector, namespace,
//!   service-account and token controllers, endpoints);
//! - [`foreign`]: workloads of other products that were never recorded
//!   (cert-manager, Helm releases, a CNI's RBAC, `kube-system`), which a
//!   restore with `--prune` must leave alive;
//! - [`webhook`]: a validating admission webhook on loopback TLS that
//!   checks Rancher's references as rancher-webhook does and can be told to
//!   fail a share of its calls.

pub mod foreign;
pub mod webhook;

pub use foreign::{Foreign, install as install_foreign};
pub use webhook::{Stats as WebhookStats, Webhook};
