//! Small JSON state files under `/run/dlll-cias` that one job writes and others read.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The saved state; the default when there is none or it is unreadable (every caller is
/// written so that the default only makes it wait or warn again, never act sooner).
pub fn load<T: DeserializeOwned + Default>(file: &Path) -> T {
    std::fs::read_to_string(file).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

/// Writes the state atomically (a reader never sees half a file).
pub fn save<T: Serialize>(file: &Path, state: &T) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = file.with_extension("json.partial");
    std::fs::write(&partial, serde_json::to_vec(state).map_err(std::io::Error::other)?)?;
    std::fs::rename(partial, file)
}
