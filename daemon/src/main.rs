//! `rewindd`, the recording daemon.

fn main() -> anyhow::Result<()> {
    Ok(())
}
