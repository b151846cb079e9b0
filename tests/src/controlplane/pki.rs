//! The harness's identities: which users the static token file holds. Key
//! material comes from `rewind_restore::localplane::pki`, shared with
//! `rewind drill`'s local control plane.

pub use rewind_restore::localplane::pki::{Error, Pki, Result};
use std::path::Path;

/// The admin user: member of `system:masters`, bypasses RBAC.
pub const ADMIN_USER: &str = "rewind-admin";
/// The least-privilege user: get/list/watch on everything, nothing else.
pub const READONLY_USER: &str = "rewind-readonly";
/// Users that exist from the start without any RBAC; tests grant them rules with
/// `ControlPlane::create_identity`. Until then they can do only what every
/// authenticated user can (discovery).
pub const SPARE_USERS: &[&str] = &[
    "restore-user",
    "limited-user",
    "daemon-user",
    "user-a",
    "user-b",
    "user-c",
];

/// The bearer token of a user listed in the token file.
pub fn token_for(user: &str) -> String {
    format!("rewind-token-{user}")
}

/// Generates keys and certificates into `dir`, with the harness's token file.
pub fn generate(dir: &Path) -> Result<Pki> {
    rewind_restore::localplane::pki::generate(dir, &token_file())
}

fn token_file() -> String {
    let mut out = format!(
        "{},{ADMIN_USER},uid-{ADMIN_USER},\"system:masters\"\n",
        token_for(ADMIN_USER)
    );
    for user in std::iter::once(&READONLY_USER).chain(SPARE_USERS) {
        out.push_str(&format!("{},{user},uid-{user}\n", token_for(user)));
    }
    out.push_str(&format!(
        "{},{},uid-kube-controller-manager\n",
        super::controllers::token(),
        super::controllers::USER
    ));
    out
}
