//! VM configurations (`nodes/<node>/qemu-server/<vmid>.conf`) and their disks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::args::param_error;
use crate::cluster::Env;
use crate::{nic, storage, Failure, Result};

pub type VmConfig = BTreeMap<String, String>;

pub fn parse(text: &str) -> VmConfig {
    text.lines()
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect()
}

pub fn render(config: &VmConfig) -> String {
    config.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
}

/// The node holding VMID's config, cluster-wide.
pub fn owner(env: &Env, vmid: u32) -> Result<Option<String>> {
    let nodes = env.root.join("nodes");
    let Ok(entries) = std::fs::read_dir(&nodes) else { return Ok(None) };
    for entry in entries.flatten() {
        if entry.path().join("qemu-server").join(format!("{vmid}.conf")).exists() {
            return Ok(Some(entry.file_name().to_string_lossy().into_owned()));
        }
    }
    Ok(None)
}

pub fn path(env: &Env, node: &str, vmid: u32) -> PathBuf {
    env.qemu_dir(node).join(format!("{vmid}.conf"))
}

/// Applies `qm set`/`qm create` options (`--delete a,b` removes keys): a `netN` value is
/// checked and stored as qemu-server writes it, with a generated MAC if it has none.
pub fn apply_options<'a>(
    config: &mut VmConfig,
    options: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<()> {
    for (key, value) in options {
        match key.as_str() {
            "delete" => value.split(',').for_each(|d| {
                config.remove(d.trim());
            }),
            "skiplock" | "output-format" => {}
            net if net
                .strip_prefix("net")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
            {
                config.insert(key.clone(), nic::with_mac(value).map_err(|e| param_error(key, &e))?);
            }
            _ => {
                config.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(())
}

/// Reads VMID's config on `node`, with the real tool's error when it is not there.
pub fn load(env: &Env, node: &str, vmid: u32) -> Result<VmConfig> {
    let file = path(env, node, vmid);
    let text = std::fs::read_to_string(&file).map_err(|_| {
        Failure::die(format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"))
    })?;
    Ok(parse(&text))
}

pub fn save(env: &Env, node: &str, vmid: u32, config: &VmConfig) -> Result<()> {
    env.require_quorum()?;
    std::fs::create_dir_all(env.qemu_dir(node))?;
    std::fs::write(path(env, node, vmid), render(config))?;
    Ok(())
}

/// Creating VMID on `node` fails when it exists anywhere else (pmxcfs's EEXIST check).
pub fn check_unused(env: &Env, vmid: u32) -> Result<()> {
    match owner(env, vmid)? {
        Some(node) => Err(Failure::die(format!("VM {vmid} already exists on node '{node}'"))),
        None => Ok(()),
    }
}

/// The first disk of a config: (storage, volume name).
pub fn first_disk(config: &VmConfig) -> Option<(String, String)> {
    ["scsi0", "virtio0", "sata0", "ide0"].iter().find_map(|key| {
        let value = config.get(*key)?;
        let volume = value.split(',').next()?;
        let (storage, name) = volume.split_once(':')?;
        Some((storage.to_string(), name.to_string()))
    })
}

/// The file behind a volume of a directory storage.
pub fn disk_file(env: &Env, storage_id: &str, volume: &str) -> Result<PathBuf> {
    let storage = storage::find(env, storage_id)?;
    Ok(Path::new(&storage.path).join("images").join(volume))
}

/// Memory in MiB (Proxmox's default is 512).
pub fn memory_mib(config: &VmConfig) -> u64 {
    config.get("memory").and_then(|m| m.parse().ok()).unwrap_or(512)
}
