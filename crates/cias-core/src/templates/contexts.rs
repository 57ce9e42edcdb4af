//! The values each template is rendered with, built from the cluster settings.

use serde::Serialize;

use super::{TemplateError, Templates};
use crate::paths;
use crate::peers::Peers;
use crate::settings::{ClusterSettings, Secret};
use crate::vrrp::{Priority, SWITCH_PRIORITY};

/// Which keepalived file to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepalivedMode {
    /// The everyday file: nopreempt, the node's own priority.
    Normal,
    /// The manual-switch file (scenario 4): wins the election once.
    ManualSwitch,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeepalivedContext {
    pub node_name: String,
    pub lan_interface: String,
    pub wan_interface: String,
    pub virtual_router_id: u16,
    pub advert_int: u16,
    /// `None`: never master, no VRRP instance.
    pub vrrp_priority: Option<u8>,
    pub switch_priority: u8,
    pub manual_switch: bool,
    /// `10.254.0.254/8`
    pub master_vip: String,
    /// e.g. `192.168.56.101/24`
    pub external_vip: String,
    /// Command keepalived runs when this node becomes master.
    pub notify_master: String,
    /// Command keepalived runs when this node becomes (or starts as) a BACKUP, goes FAULT or
    /// stops: a node that is not the master stops its mfsmaster.
    pub notify_demoted: String,
    /// Quorum check tracked every second, when installed.
    pub quorum_check: Option<String>,
    /// This node's address, the source of its unicast adverts.
    pub unicast_src_ip: String,
    /// The other nodes' addresses ([`crate::peers::LONE_PEER`] when alone).
    pub unicast_peers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node {0} was installed with priority 0 (never master): it cannot be switched to master")]
pub struct NeverMasterError(pub String);

impl KeepalivedContext {
    pub fn new(
        settings: &ClusterSettings,
        node_name: &str,
        priority: Priority,
        mode: KeepalivedMode,
        peers: &Peers,
    ) -> Result<Self, NeverMasterError> {
        let manual_switch = mode == KeepalivedMode::ManualSwitch;
        if manual_switch && !priority.can_be_master() {
            return Err(NeverMasterError(node_name.to_string()));
        }
        Ok(Self {
            node_name: node_name.to_string(),
            lan_interface: settings.interfaces.lan.clone(),
            wan_interface: settings.interfaces.wan.clone(),
            virtual_router_id: settings.vrrp.virtual_router_id,
            advert_int: settings.vrrp.advert_int,
            vrrp_priority: if manual_switch { Some(SWITCH_PRIORITY) } else { priority.vrrp() },
            switch_priority: SWITCH_PRIORITY,
            manual_switch,
            master_vip: format!("{}/8", settings.internal.master_vip),
            external_vip: format!(
                "{}/{}",
                settings.external.master_ip,
                settings.external.network.prefix_len()
            ),
            // In a unit of its own, not in keepalived's: a takeover may read MooseFS, and a read
            // the FUSE daemon never answers cannot be killed; in keepalived's cgroup it kept a
            // killed keepalived from restarting (measured in the failover bench: minutes). Bound
            // to keepalived all the same: a keepalived that dies takes its takeover with it, or
            // the stale one would hold the run lock against the next (measured too: a live
            // migration it waited on kept the cluster without mfsmaster). Stopped with SIGKILL,
            // and not ordered after keepalived: with After=, keepalived's restart waited for this
            // unit to stop, and a takeover blocked on MooseFS (no master any more) did not end on
            // SIGTERM - keepalived killed on three masters in a row stayed down on all of them
            // (measured in selfheal_lab; SIGKILL ends FUSE waits, yet a restart still waited up
            // to 21 s in CI). A new takeover needs a new election first (seconds), by which
            // time the killed one is gone.
            notify_master: format!(
                "/usr/bin/systemd-run --quiet --collect --property=BindsTo=keepalived.service \
                 --property=KillSignal=SIGKILL --description=dlll-cias-takeover \
                 {}/dlll_cias-switch-to-master --from-keepalived",
                paths::BIN_DIR
            ),
            notify_demoted: format!("{}/dlll_cias-fence demoted", paths::BIN_DIR),
            quorum_check: Some(format!("{}/dlll_cias-fence check", paths::BIN_DIR)),
            unicast_src_ip: peers.own.to_string(),
            unicast_peers: peers.unicast().iter().map(ToString::to_string).collect(),
        })
    }
}

/// Everything the MooseFS templates need.
#[derive(Debug, Clone, Serialize)]
pub struct MooseFsContext {
    pub master_host: String,
    pub data_path: String,
    pub config_dir: String,
    pub exports_network: String,
    pub reconnection_delay_secs: u32,
    pub mount_point: String,
    /// Mount points of this node's data disks (`/data/sdb`, ...).
    pub disks: Vec<String>,
    /// The password every mount needs (in mfsexports.cfg; `None` on clusters installed without).
    #[serde(skip)]
    pub password: Option<Secret>,
    /// Shown to templates: the password, only while rendering the files that hold it
    /// (mfsexports.cfg, and mfsmount.cfg: mfsmount 3.0.117's `mfspassfile` refuses a right
    /// password, measured in the lab, while `mfspassword` in its config file works and shows
    /// on no command line).
    pub password_text: Option<Secret>,
}

impl MooseFsContext {
    pub fn new(settings: &ClusterSettings, disks: Vec<String>, password: Option<Secret>) -> Self {
        Self {
            master_host: paths::MFS_MASTER_HOST.to_string(),
            data_path: "/var/lib/mfs".to_string(),
            config_dir: "/etc/mfs".to_string(),
            exports_network: settings.moosefs.exports_network.to_string(),
            reconnection_delay_secs: settings.moosefs.reconnection_delay_secs,
            mount_point: paths::MFS_MOUNT.to_string(),
            disks,
            password,
            password_text: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CronContext {
    pub node_name: String,
    pub bin_dir: String,
    pub router_local_copy: String,
    pub vmid_map_file: String,
    /// How long a node may be silent before the master removes it, as the cron comment says it.
    pub node_removal: String,
}

impl CronContext {
    pub fn new(settings: &ClusterSettings, node_name: &str) -> Self {
        Self {
            node_name: node_name.to_string(),
            bin_dir: paths::BIN_DIR.to_string(),
            router_local_copy: format!("{} (under its vzdump name)", paths::LOCAL_DUMP_DIR),
            vmid_map_file: format!("{}/pve_master_vmid.conf", paths::SHARED_MANAGEMENT_DIR),
            node_removal: crate::node_watch::span(settings.watch.node_removal()),
        }
    }
}

/// `/etc/network/interfaces`: the NICs bridged into `vmbr0` (bonded first when there are
/// several), the node's address, and extra interfaces brought up unaddressed (e.g. a WAN NIC
/// carrying only the external VIP).
#[derive(Debug, Clone, Serialize)]
pub struct NetworkContext {
    pub nics: Vec<String>,
    pub bond: bool,
    /// e.g. `10.254.0.1/8`
    pub address: String,
    pub gateway: String,
    pub extra_manual: Vec<String>,
}

impl NetworkContext {
    pub fn new(settings: &ClusterSettings, nics: &[String], ip: std::net::Ipv4Addr) -> Self {
        let wan = &settings.interfaces.wan;
        let extra_manual = if wan != "vmbr0" && !nics.contains(wan) { vec![wan.clone()] } else { vec![] };
        Self {
            nics: nics.to_vec(),
            bond: nics.len() > 1,
            address: format!("{ip}/8"),
            gateway: settings.internal.router_ip.to_string(),
            extra_manual,
        }
    }
}

/// A rendered file: where it goes on the node and its text. A `secret` one holds a password:
/// written with [`crate::host::Command::write_secret_file`], readable by root and `group` only
/// (and its text never shows in `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub path: String,
    pub text: String,
    pub secret: Option<SecretFile>,
}

impl std::fmt::Debug for RenderedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = if self.secret.is_some() { "***" } else { self.text.as_str() };
        f.debug_struct("RenderedFile")
            .field("path", &self.path)
            .field("text", &text)
            .field("secret", &self.secret)
            .finish()
    }
}

/// How a file holding a password is owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretFile {
    pub mode: &'static str,
    pub group: &'static str,
}

/// The MooseFS files of one node, rendered, with their install paths.
pub fn moosefs_files(
    templates: &Templates,
    ctx: &MooseFsContext,
) -> Result<Vec<RenderedFile>, TemplateError> {
    ["mfsmaster", "mfsexports", "mfsmetalogger", "mfschunkserver", "mfshdd", "mfsmount"]
        .into_iter()
        .map(|name| {
            let secret = match name {
                _ if ctx.password.is_none() => None,
                // mfsmaster reads its exports as user mfs.
                "mfsexports" => Some(SecretFile { mode: "0640", group: "mfs" }),
                "mfsmount" => Some(SecretFile { mode: "0600", group: "root" }),
                _ => None,
            };
            let mut context = ctx.clone();
            if secret.is_some() {
                context.password_text = ctx.password.clone();
            }
            Ok(RenderedFile {
                path: format!("{}/{name}.cfg", ctx.config_dir),
                text: templates.render(&format!("moosefs/{name}.cfg.j2"), &context)?,
                secret,
            })
        })
        .collect()
}
