//! The compactor's settings in force, shared by every job and swapped whole
//! by a configuration reload (SIGHUP).

use std::sync::{Arc, RwLock};

use super::config::Settings;

/// The settings in force. Each job takes one copy per operation
/// ([`LiveSettings::get`]), so a reload never changes a setting half way
/// through a seal, a fold or a ship. Clones share the same settings.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// Replaced whole on reload.
    inner: Arc<RwLock<Arc<Settings>>>,
}

impl LiveSettings {
    /// Starts with `settings`.
    #[must_use]
    pub fn new(settings: Settings) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Arc::new(settings))),
        }
    }

    /// The settings in force now.
    #[must_use]
    pub fn get(&self) -> Arc<Settings> {
        match self.inner.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the settings, keeping the store and its retry policy: the
    /// store is opened once, and a changed store needs a restart (its
    /// catalog and what was shipped belong to the old one).
    pub fn replace(&self, mut settings: Settings) {
        let old = self.get();
        settings.store = old.store.clone();
        settings.store_retry = old.store_retry;
        match self.inner.write() {
            Ok(mut s) => *s = Arc::new(settings),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(settings),
        }
    }
}
