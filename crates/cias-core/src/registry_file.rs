//! The address registry as a file (`registry.yaml` in the management directory; the cluster's
//! copy is the master's `/mnt/mfs/cias/registry.yaml`), changed by several writers at once:
//! installers claiming addresses, removals retiring them.

use thiserror::Error;

use crate::host::{swap_file, Command, Host, HostError};
use crate::netplan::{Registry, RegistryEntry};
use crate::paths::REGISTRY_FILE;
use crate::shared_files::{self, SharedFileError};

/// How often a change is made again when other writers changed the registry meanwhile.
const ATTEMPTS: usize = 10;

#[derive(Debug, Error)]
pub enum RegistryFileError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("the address registry is damaged - {0}")]
    Damaged(#[from] serde_yaml::Error),
    #[error("{path} on {host} kept changing under {ATTEMPTS} attempts; run the command again")]
    Busy { path: String, host: String },
    #[error(transparent)]
    Shared(#[from] SharedFileError),
}

/// Reads registry text (empty: no node yet).
pub fn parse(text: &str) -> Result<Registry, RegistryFileError> {
    if text.trim().is_empty() {
        return Ok(Registry::default());
    }
    Ok(serde_yaml::from_str(text)?)
}

/// Reads the registry `path` on `host`, lets `change` edit it and saves it, so that writers at
/// once never lose each other's change (two installers never get one address): the file is
/// replaced only if it still holds what the change was computed from (compared and renamed
/// under a lock of its directory on `host`, [`swap_file`]); a loser reads it again and changes
/// anew. Nothing waits on a lock a dead writer left: the lock lives as long as one short
/// command. Only a first node may start a registry (`may_create`). Returns the text saved.
pub fn update<E>(
    host: &dyn Host,
    path: &str,
    may_create: bool,
    mut change: impl FnMut(&mut Registry) -> Result<(), E>,
) -> Result<String, E>
where
    E: From<RegistryFileError>,
{
    let io = |e: HostError| E::from(RegistryFileError::Host(e));
    // The cluster's copy is used only as its last writer recorded it, and recorded again.
    // Another writer's record may lag its swap by a moment: a mismatch is tried again too.
    let shared = path == SHARED;
    let mut mismatch = None;
    for _ in 0..ATTEMPTS {
        if shared {
            if let Err(e) = shared_files::CLUSTER.verify(host, REGISTRY_FILE) {
                mismatch = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(300));
                continue;
            }
            mismatch = None;
        }
        let read = if may_create
            && !host.execute(&Command::query_argv(&["test", "-f", path])).map_err(io)?.success()
        {
            String::new()
        } else {
            host.run(&Command::query_argv(&["cat", path])).map_err(io)?.stdout
        };
        let mut registry = parse(&read)?;
        change(&mut registry)?;
        let text = serde_yaml::to_string(&registry).map_err(RegistryFileError::from)?;
        if shared {
            shared_files::CLUSTER.allow(host, REGISTRY_FILE, &read, &text).map_err(io)?;
        }
        if swap_file(host, path, &read, &text, "0644").map_err(io)? {
            if shared {
                shared_files::CLUSTER.record_text(host, REGISTRY_FILE, &text).map_err(io)?;
            }
            return Ok(text);
        }
        tracing::info!(
            "{path} on {} changed since it was read (another writer): changing it again",
            host.name()
        );
    }
    Err(match mismatch {
        Some(e) => RegistryFileError::Shared(e),
        None => RegistryFileError::Busy { path: path.into(), host: host.name().into() },
    }
    .into())
}

/// The cluster's registry (the master's copy on shared storage).
pub const SHARED: &str = "/mnt/mfs/cias/registry.yaml";

/// The text of registry `path` on `host`; the shared one only as its last writer recorded it.
pub fn read_shared_if(host: &dyn Host, path: &str) -> Result<String, RegistryFileError> {
    if path == SHARED {
        shared_files::CLUSTER.verify(host, REGISTRY_FILE)?;
    }
    Ok(host.run(&Command::query_argv(&["cat", path]))?.stdout)
}

/// Retires the node whose Proxmox node name is `node` in the registry `path` on `host`: its
/// address and host name are never given out again. Returns its entry when this call retired
/// it; `None` when the registry does not know it, or it was retired already.
pub fn retire(host: &dyn Host, path: &str, node: &str) -> Result<Option<RegistryEntry>, RegistryFileError> {
    let entry = parse(&read_shared_if(host, path)?)?.by_node_name(node).cloned();
    let Some(entry) = entry.filter(|e| !e.removed) else { return Ok(None) };
    update(host, path, false, |r: &mut Registry| {
        // Known to be there: it was read just before, and entries are never deleted.
        let _ = r.retire(&entry.hostname);
        Ok::<(), RegistryFileError>(())
    })?;
    Ok(Some(entry))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::host::LocalHost;
    use crate::netplan::NodeKind;

    use super::*;

    type Error = Box<dyn std::error::Error + Send + Sync>;

    /// What `claim` does for node `name` (without the network probe, which takes its time too).
    fn claim_as(name: &str) -> impl FnMut(&mut Registry) -> Result<(), Error> + '_ {
        move |registry| {
            registry.claim_for_node(name, NodeKind::Pve, "master-rack", "b", "lab.example")?;
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        }
    }

    #[test]
    fn installers_claiming_at_once_get_different_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.yaml");
        let path = path.to_str().unwrap();
        let host = LocalHost::new("master");
        update(&host, path, true, claim_as("node1")).unwrap();
        let names = ["node2", "node3", "node4"];
        std::thread::scope(|s| {
            for name in names {
                let host = &host;
                s.spawn(move || update(host, path, false, claim_as(name)).unwrap());
            }
        });
        let registry = parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut ips: Vec<String> = registry.entries.iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(ips.len(), 4, "{registry:?}");
        ips.sort();
        assert_eq!(ips, ["10.254.0.1", "10.254.1.1", "10.254.1.2", "10.254.1.3"]);
        for name in names {
            assert!(registry.by_node_name(name).is_some(), "{name} lost its claim: {registry:?}");
        }
    }

    #[test]
    fn an_extension_needs_the_clusters_registry_and_a_failed_claim_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.yaml");
        let path = path.to_str().unwrap();
        let host = LocalHost::new("master");
        let err = update(&host, path, false, claim_as("node2")).unwrap_err();
        assert!(err.to_string().contains("cat"), "{err}");
        update(&host, path, true, claim_as("node1")).unwrap();
        let before = std::fs::read_to_string(path).unwrap();
        let err = update(&host, path, false, |_| Err::<(), Error>("address in use".into())).unwrap_err();
        assert_eq!(err.to_string(), "address in use");
        assert_eq!(std::fs::read_to_string(path).unwrap(), before);
    }
}
