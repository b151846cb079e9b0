//! Child processes that die with their owner: shared with `rewind drill`'s
//! local control plane, which owns the code.

pub use rewind_restore::localplane::process::{Error, Managed};
