//! Small JSON state files under `/run/dlll-cias` that one job writes and others read.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::paths;

/// A state kept in one file of [`paths::STATE_DIR`].
pub trait StateFile: Serialize + DeserializeOwned + Default {
    /// The file's name in [`paths::STATE_DIR`].
    const NAME: &'static str;

    fn file() -> PathBuf {
        Path::new(paths::STATE_DIR).join(Self::NAME)
    }

    /// The saved state; the default when there is none or it is unreadable (every state is
    /// written so that the default only makes its reader wait or warn again, never act sooner).
    fn load(file: &Path) -> Self {
        std::fs::read_to_string(file).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }

    /// Writes the state crash-safely (a reader never sees half a file).
    fn save(&self, file: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        crate::host::write_local_file(file, &bytes, 0o644)
    }
}
