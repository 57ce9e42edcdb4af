//! Files on shared storage (`/mnt/mfs/cias`) are not trusted blindly (SPEC section 8): whoever
//! writes one records its SHA-256 in the Proxmox cluster file system (`/etc/pve/dlll-cias`),
//! which only the cluster's members can write, and a reader uses a file only while it still
//! matches its record. So a template, the settings or the address registry changed on MooseFS
//! behind the toolkit's back is refused, not rendered into a new node or a node filter.

use crate::host::{Command, Host, HostError};
use crate::paths::SHARED_MANAGEMENT_DIR;

/// Where the records live: one `sha256sum` line per file.
pub const RECORD_DIR: &str = "/etc/pve/dlll-cias/sha256";

#[derive(Debug, thiserror::Error)]
pub enum SharedFileError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(
        "{SHARED_MANAGEMENT_DIR}/{0} has no record in {RECORD_DIR}: the toolkit did not write it, so it is not used (if you put it there yourself, record it on a member: `cd {SHARED_MANAGEMENT_DIR} && sha256sum {0} > {RECORD_DIR}/<the path with / as %>.sha256`)"
    )]
    Unrecorded(String),
    #[error(
        "{SHARED_MANAGEMENT_DIR}/{0} changed on shared storage since the toolkit wrote it (its SHA-256 differs from the record in {RECORD_DIR}): it is not used; find out who changed it"
    )]
    Changed(String),
}

/// The record of `relative` (a path under the shared directory; `/` becomes `%`).
fn record_file(relative: &str) -> String {
    format!("{RECORD_DIR}/{}.sha256", relative.replace('/', "%"))
}

/// Records the SHA-256 of the shared file `relative` as it is now.
pub fn record(host: &dyn Host, relative: &str) -> Result<(), HostError> {
    let sum = host.run(&Command::query_argv(&[
        "sh",
        "-c",
        "cd -- \"$1\" && sha256sum -- \"$2\"",
        "sh",
        SHARED_MANAGEMENT_DIR,
        relative,
    ]))?;
    // /etc/pve takes only its own file mode (0640).
    host.run(&Command::write_file(&record_file(relative), sum.stdout, "0640"))?;
    Ok(())
}

/// Fails unless the shared file `relative` still matches its record.
pub fn verify(host: &dyn Host, relative: &str) -> Result<(), SharedFileError> {
    let recorded = host.execute(&Command::query_argv(&["cat", &record_file(relative)]))?;
    if !recorded.success() || recorded.stdout.trim().is_empty() {
        return Err(SharedFileError::Unrecorded(relative.to_string()));
    }
    let check = host.execute(
        &Command::query_argv(&[
            "sh",
            "-c",
            "cd -- \"$1\" && sha256sum --check --status --strict -",
            "sh",
            SHARED_MANAGEMENT_DIR,
        ])
        .stdin_data(recorded.stdout),
    )?;
    if check.success() {
        Ok(())
    } else {
        Err(SharedFileError::Changed(relative.to_string()))
    }
}

/// The shared files the toolkit records and nodes take: the settings, the secrets, the address
/// registry and the template overrides (relative to the shared directory).
pub fn managed(host: &dyn Host) -> Result<Vec<String>, HostError> {
    let out = host.run(&Command::query_argv(&[
        "sh",
        "-c",
        "cd -- \"$1\" && for f in cias.yaml secrets.yaml registry.yaml; do [ -f \"$f\" ] && echo \"$f\"; done; \
         [ -d templates ] && find templates -type f; true",
        "sh",
        SHARED_MANAGEMENT_DIR,
    ]))?;
    Ok(out.stdout.lines().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_one_flat_file_per_shared_file() {
        assert_eq!(
            record_file("templates/keepalived/keepalived.conf.j2"),
            "/etc/pve/dlll-cias/sha256/templates%keepalived%keepalived.conf.j2.sha256"
        );
    }
}
