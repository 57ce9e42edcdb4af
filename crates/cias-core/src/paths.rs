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
pub const BIN_DIR: &str = "/usr/local/sbin";
/// The MooseFS mount and the master's name in `/etc/hosts`.
pub const MFS_MOUNT: &str = "/mnt/mfs";
pub const MFS_MASTER_HOST: &str = "cias-pve-master";
/// Data disks are mounted at `/data/<dev>`.
pub const DATA_DISK_ROOT: &str = "/data";

/// The default settings file, `/data/cias/cias.yaml`.
pub fn default_settings_file() -> std::path::PathBuf {
    std::path::Path::new(MANAGEMENT_DIR).join(SETTINGS_FILE)
}
