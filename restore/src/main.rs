//! `rewind`, the restore tool.

fn main() -> anyhow::Result<()> {
    Ok(())
}
