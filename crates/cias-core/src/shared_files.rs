//! Files on shared storage (`/mnt/mfs/cias`) are not trusted blindly (SPEC section 8): whoever
//! writes one records its SHA-256 in the Proxmox cluster file system (`/etc/pve/dlll-cias`),
//! which only the cluster's members can write, and a reader uses a file only while it matches
//! its record. So a template, the settings or the address registry changed on MooseFS behind
//! the toolkit's back is refused, not rendered into a new node or a node filter.

use crate::host::{Command, Host, HostError};
use crate::paths::SHARED_MANAGEMENT_DIR;

/// How long a read of shared storage may take: a MooseFS mount whose master is gone blocks
/// its readers, and jobs that run every minute must not pile up behind it.
const HUNG: std::time::Duration = std::time::Duration::from_secs(30);

/// Shared files and where their records live.
#[derive(Debug, Clone, Copy)]
pub struct Store<'a> {
    pub shared: &'a str,
    pub records: &'a str,
}

/// The cluster's: `/mnt/mfs/cias`, recorded in `/etc/pve/dlll-cias/sha256`.
pub const CLUSTER: Store<'static> =
    Store { shared: SHARED_MANAGEMENT_DIR, records: "/etc/pve/dlll-cias/sha256" };

#[derive(Debug, thiserror::Error)]
pub enum SharedFileError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(
        "{shared}/{file} has no record in {records}: the toolkit did not write it, so it is not used (if you put it there yourself, record it on a member: `cd {shared} && sha256sum {file} > {records}/<the path with / as %>.sha256`)"
    )]
    Unrecorded { shared: String, records: String, file: String },
    #[error(
        "{shared}/{file} changed on shared storage since the toolkit wrote it (its SHA-256 is not the one recorded in {records}): it is not used; find out who changed it"
    )]
    Changed { shared: String, records: String, file: String },
}

/// The first word of `sha256sum`'s answer.
fn first_word(text: &str) -> String {
    text.split_whitespace().next().unwrap_or_default().to_string()
}

/// The SHA-256 of `text`, computed where it is written.
fn hash_of_text(host: &dyn Host, text: &str) -> Result<String, HostError> {
    Ok(first_word(&host.run(&Command::query_argv(&["sha256sum"]).stdin_data(text))?.stdout))
}

impl Store<'_> {
    /// The record of `relative` (a path under the shared directory; `/` becomes `%`).
    fn record_file(&self, relative: &str) -> String {
        format!("{}/{}.sha256", self.records, relative.replace('/', "%"))
    }

    /// The SHA-256 of the shared file `relative` as it is now.
    fn hash_of_file(&self, host: &dyn Host, relative: &str) -> Result<String, HostError> {
        let script = "cd -- \"$1\" && sha256sum -- \"$2\"";
        let out =
            host.run(&Command::query_argv(&["sh", "-c", script, "sh", self.shared, relative]).timeout(HUNG))?;
        Ok(first_word(&out.stdout))
    }

    /// The SHA-256 sums recorded for `relative`, if any.
    fn recorded(&self, host: &dyn Host, relative: &str) -> Result<Option<Vec<String>>, HostError> {
        let out = host.execute(&Command::query_argv(&["cat", &self.record_file(relative)]))?;
        let hashes: Vec<String> = out.stdout.lines().map(first_word).filter(|h| !h.is_empty()).collect();
        Ok((out.success() && !hashes.is_empty()).then_some(hashes))
    }

    /// Writes the record: the SHA-256 sums `relative` may have, one `sha256sum` line each.
    fn write_record(&self, host: &dyn Host, relative: &str, hashes: &[String]) -> Result<(), HostError> {
        let text: String = hashes.iter().map(|h| format!("{h}  {relative}\n")).collect();
        // /etc/pve takes only its own file mode (0640).
        host.run(&Command::write_file(&self.record_file(relative), text, "0640"))?;
        Ok(())
    }

    /// Records the shared file `relative` as it is now.
    pub fn record(&self, host: &dyn Host, relative: &str) -> Result<(), HostError> {
        let hash = self.hash_of_file(host, relative)?;
        self.write_record(host, relative, &[hash])
    }

    /// Before a file is replaced: adds its current and its next text to the valid ones, so a
    /// crash between the replacement and [`Store::record_text`] leaves a file that still
    /// verifies, and a writer racing this one still finds its own text valid.
    pub fn allow(&self, host: &dyn Host, relative: &str, current: &str, next: &str) -> Result<(), HostError> {
        let mut hashes = self.recorded(host, relative)?.unwrap_or_default();
        for text in [current, next] {
            let hash = hash_of_text(host, text)?;
            if !hashes.contains(&hash) {
                hashes.push(hash);
            }
        }
        self.write_record(host, relative, &hashes)
    }

    /// After a file was replaced with `text`: only that is valid.
    pub fn record_text(&self, host: &dyn Host, relative: &str, text: &str) -> Result<(), HostError> {
        let hash = hash_of_text(host, text)?;
        self.write_record(host, relative, &[hash])
    }

    /// Fails unless the shared file `relative` matches its record.
    pub fn verify(&self, host: &dyn Host, relative: &str) -> Result<(), SharedFileError> {
        let error = |unrecorded: bool| {
            let (shared, records, file) =
                (self.shared.to_string(), self.records.to_string(), relative.to_string());
            if unrecorded {
                SharedFileError::Unrecorded { shared, records, file }
            } else {
                SharedFileError::Changed { shared, records, file }
            }
        };
        let Some(hashes) = self.recorded(host, relative)? else { return Err(error(true)) };
        if hashes.contains(&self.hash_of_file(host, relative)?) {
            Ok(())
        } else {
            Err(error(false))
        }
    }

    /// A cluster installed before records existed has none at all: its files are recorded as
    /// they are (trust on first use), once; returns what was recorded. With any record in
    /// place nothing is done: a file without one stays refused.
    pub fn adopt_unrecorded(&self, host: &dyn Host) -> Result<Vec<String>, HostError> {
        if host.execute(&Command::query_argv(&["test", "-d", self.records]))?.success() {
            return Ok(Vec::new());
        }
        let files = self.managed(host)?;
        for relative in &files {
            self.record(host, relative)?;
        }
        Ok(files)
    }

    /// The shared files the toolkit records and nodes take: the settings, the secrets, the
    /// address registry and the template overrides (relative to the shared directory).
    pub fn managed(&self, host: &dyn Host) -> Result<Vec<String>, HostError> {
        let script = "cd -- \"$1\" && for f in cias.yaml secrets.yaml registry.yaml; do [ -f \"$f\" ] && echo \"$f\"; done; \
                      [ -d templates ] && find templates -type f; true";
        let out = host.run(&Command::query_argv(&["sh", "-c", script, "sh", self.shared]).timeout(HUNG))?;
        Ok(out.stdout.lines().map(str::to_string).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::LocalHost;

    fn store(dir: &tempfile::TempDir) -> (Store<'static>, std::path::PathBuf) {
        let shared = dir.path().join("shared");
        std::fs::create_dir_all(shared.join("templates/keepalived")).unwrap();
        let leak =
            |p: std::path::PathBuf| -> &'static str { Box::leak(p.display().to_string().into_boxed_str()) };
        (Store { shared: leak(shared.clone()), records: leak(dir.path().join("records")) }, shared)
    }

    #[test]
    fn a_file_is_used_only_as_its_writer_recorded_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, shared) = store(&dir);
        let host = LocalHost::new("node1");
        let template = "templates/keepalived/keepalived.conf.j2";
        std::fs::write(shared.join(template), "vrrp_instance {}\n").unwrap();
        std::fs::write(shared.join("registry.yaml"), "entries: []\n").unwrap();
        assert!(matches!(store.verify(&host, template), Err(SharedFileError::Unrecorded { .. })));

        assert_eq!(store.adopt_unrecorded(&host).unwrap(), ["registry.yaml", template]);
        assert_eq!(store.adopt_unrecorded(&host).unwrap(), Vec::<String>::new(), "once only");
        store.verify(&host, template).unwrap();
        assert!(dir.path().join("records/templates%keepalived%keepalived.conf.j2.sha256").exists());

        // Planted behind the toolkit's back: refused, with the file named.
        std::fs::write(shared.join(template), "vrrp_instance { notify_master \"/tmp/x\" }\n").unwrap();
        let err = store.verify(&host, template).unwrap_err().to_string();
        assert!(err.contains("keepalived.conf.j2 changed on shared storage"), "{err}");
    }

    #[test]
    fn a_replacement_verifies_before_during_and_after() {
        let dir = tempfile::tempdir().unwrap();
        let (store, shared) = store(&dir);
        let host = LocalHost::new("node1");
        let file = shared.join("registry.yaml");
        std::fs::write(&file, "old\n").unwrap();
        store.record(&host, "registry.yaml").unwrap();
        store.allow(&host, "registry.yaml", "old\n", "new\n").unwrap();
        store.verify(&host, "registry.yaml").unwrap();
        std::fs::write(&file, "new\n").unwrap(); // a crash here leaves a valid file
        store.verify(&host, "registry.yaml").unwrap();
        store.record_text(&host, "registry.yaml", "new\n").unwrap();
        store.verify(&host, "registry.yaml").unwrap();
        std::fs::write(&file, "old\n").unwrap();
        assert!(store.verify(&host, "registry.yaml").is_err(), "the old text is no longer valid");
    }
}
