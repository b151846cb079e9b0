//! `rewind verify`: every file of the store checked offline, and the
//! store's lineages (gaps, overlaps, duplicates, broken digest links,
//! foreign files, forks); non-zero exit when anything is damaged, missing
//! or does not form one history.

use std::io::Write;

use anyhow::{Result, bail};
use rewind_history::pit::verify::verify_store;

use super::args::{Output, VerifyArgs};
use super::store::StoreArgs;

/// Runs `rewind verify`.
pub async fn run(a: &VerifyArgs, store: &StoreArgs) -> Result<()> {
    let src = store.open().await?;
    let report = verify_store(src.store(), src.identities()).await?;
    let mut out = std::io::stdout().lock();
    match a.output {
        Output::Json => {
            serde_json::to_writer_pretty(
                &mut out,
                &serde_json::json!({"damaged": report.is_damaged(), "files": report.files, "gaps": report.gaps, "lineages": report.lineages}),
            )?;
            writeln!(out)?;
        }
        Output::Table => write!(out, "{}", report.to_text())?,
    }
    if report.is_damaged() {
        bail!("the store is damaged (see above)");
    }
    Ok(())
}
