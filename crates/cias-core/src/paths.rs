//! Where things live on a node. Every install path is named here and nowhere else.

/// Local management directory (SPEC section 4).
pub const MANAGEMENT_DIR: &str = "/data/cias";
/// Its shared mirror on MooseFS.
pub const SHARED_MANAGEMENT_DIR: &str = "/mnt/mfs/cias";
/// Cluster settings, inside the management directory.
pub const SETTINGS_FILE: &str = "cias.yaml";
/// Passwords (mode 0600), inside the management directory.
pub const SECRETS_FILE: &str = "secrets.yaml";
/// Node/NAS address registry, inside the management directory.
pub const REGISTRY_FILE: &str = "registry.yaml";
/// Administrator overrides of the shipped templates, inside the management directory.
pub const TEMPLATE_OVERRIDE_DIR: &str = "templates";
/// Where the `dlll_cias-*` binaries are installed.
pub const BIN_DIR: &str = "/usr/sbin";
/// The MooseFS mount and the master's name in `/etc/hosts`.
pub const MFS_MOUNT: &str = "/mnt/mfs";
/// systemd's unit for [`MFS_MOUNT`] (from its fstab line): mounting through it keeps mfsmount
/// in that unit, where nothing kills it when the starting command ends.
pub const MFS_MOUNT_UNIT: &str = "mnt-mfs.mount";
pub const MFS_MASTER_HOST: &str = "cias-pve-master";
/// Data disks are mounted at `/data/<dev>`.
pub const DATA_DISK_ROOT: &str = "/data";

/// The default settings file, `/data/cias/cias.yaml`.
pub fn default_settings_file() -> std::path::PathBuf {
    std::path::Path::new(MANAGEMENT_DIR).join(SETTINGS_FILE)
}

/// A node's own directory in the management directory: its install record, journals, logs.
pub fn node_dir(node: &str) -> std::path::PathBuf {
    std::path::Path::new(MANAGEMENT_DIR).join("nodes").join(node)
}

/// Runtime state of the dlll-cias services (gone at reboot, on purpose: it describes now).
pub const STATE_DIR: &str = "/run/dlll-cias";
/// State that must outlive a reboot (which alerts were mailed when).
pub const LASTING_STATE_DIR: &str = "/var/lib/dlll-cias";

/// Held while `dlll_cias-setup` runs here.
pub const SETUP_LOCK: &str = "/run/dlll_cias-setup.lock";

/// Left on the old master by a manual switch while it takes its final metadata: the
/// reconcile loop there does not restart the mfsmaster the switch stopped.
pub const HANDOVER_MARK: &str = "/run/dlll-cias/handing-over";

/// Left by the reconcile loop when it killed this node's mfsmaster after a quorum loss: that
/// master may have logged changes the quorate side never saw, and so may this node's
/// metalogger, which followed it. The next demotion starts the metalogger over (and removes
/// the mark); a promotion here removes it too (this node's copy is the lineage again).
/// Lasting: a node reset by its watchdog comes back with it.
pub const CUT_OFF_MARK: &str = "/var/lib/dlll-cias/master-cut-off";

/// Held while a takeover (`dlll_cias-switch-to-master`) runs here.
pub const TAKEOVER_LOCK: &str = "/run/dlll-cias/switch-to-master.lock";
/// Which VMIDs live on which node, written every minute by the master (SPEC section 4).
pub const VMID_MAP_FILE: &str = "/mnt/mfs/cias/pve_master_vmid.conf";
/// The dump directory of Proxmox's `local` storage: the router's local backup copy lives here
/// under its vzdump name (for when MooseFS itself is gone).
pub const LOCAL_DUMP_DIR: &str = "/var/lib/vz/dump";
/// Where MooseFS's backup storages keep their archives.
pub const SHARED_DUMP_DIR: &str = "/mnt/mfs/dump";

/// This node's Proxmox name: the host name up to its first dot, as Proxmox derives it.
pub fn node_name() -> std::io::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    Ok(name.trim().split('.').next().unwrap_or_default().to_string())
}
