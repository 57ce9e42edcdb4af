//! The installer's questions: each one is a command-line flag and a key of the answers file
//! (`--answers FILE`, YAML, the same names with `_`), asked interactively only when neither
//! gives it and a terminal is attached. Flags win over the file.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use serde::Deserialize;

/// Every answer the installer may need. `None`/empty means "not given".
#[derive(Debug, Default, Clone, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Answers {
    /// keepalived priority of this node, 0..100 (0 = never master; default 50).
    #[arg(long, value_name = "0..100")]
    pub priority: Option<u8>,
    /// Rack name used in this node's host name (`pve.<rack>.<slot>.<R>-<N>.<domain>`).
    #[arg(long)]
    pub rack: Option<String>,
    /// Slot name used in this node's host name.
    #[arg(long)]
    pub slot: Option<String>,
    /// Network interfaces bridged into vmbr0 (repeat; default: every NIC found).
    #[arg(long = "nic", value_name = "NIC")]
    #[serde(default)]
    pub nics: Vec<String>,
    /// Interface that carries the external master IP (default vmbr0).
    #[arg(long, value_name = "IFACE")]
    pub wan_interface: Option<String>,

    /// First node: DNS domain of the node host names.
    #[arg(long)]
    pub domain: Option<String>,
    /// First node: where reports go (default: root's e-mail from the Proxmox install).
    #[arg(long)]
    pub admin_email: Option<String>,
    /// First node: the external network, e.g. 192.168.56.0/24.
    #[arg(long, value_name = "CIDR")]
    pub external_network: Option<Ipv4Net>,
    /// First node: the external gateway.
    #[arg(long, value_name = "IP")]
    pub external_gateway: Option<Ipv4Addr>,
    /// First node: the master's external IP (a keepalived VIP).
    #[arg(long, value_name = "IP")]
    pub master_ip: Option<Ipv4Addr>,
    /// First node: the router's "Proxmox management" IP (also its web GUI).
    #[arg(long, value_name = "IP")]
    pub router_proxmox_ip: Option<Ipv4Addr>,
    /// First node: the router's "NAS management" IP.
    #[arg(long, value_name = "IP")]
    pub router_nas_ip: Option<Ipv4Addr>,
    /// First node: the router's "VM management" IPs, index 0 first (repeat).
    #[arg(long = "router-vm-ip", value_name = "IP")]
    #[serde(default)]
    pub router_vm_ips: Vec<Ipv4Addr>,
    /// First node: the administrator account created on the router.
    #[arg(long, value_name = "NAME")]
    pub router_admin_user: Option<String>,
    /// First node: the router's vzdump archive (default: the newest
    /// /data/cias/vzdump-qemu-100-* archive).
    #[arg(long, value_name = "FILE")]
    pub router_archive: Option<PathBuf>,
    /// First node: SMTP relay for reports (default localhost).
    #[arg(long, value_name = "HOST")]
    pub smtp_host: Option<String>,
    /// First node: SMTP port (default 25).
    #[arg(long, value_name = "PORT")]
    pub smtp_port: Option<u16>,
    /// First node: sender address of reports.
    #[arg(long, value_name = "ADDRESS")]
    pub smtp_from: Option<String>,
    /// First node: the addresses the uplink check pings, any answer counts (repeat; default:
    /// the external gateway, 8.8.8.8 and 1.1.1.1).
    #[arg(long = "uplink-target", value_name = "IP")]
    #[serde(default, alias = "uplink_target", deserialize_with = "cias_core::settings::one_or_many")]
    pub uplink_targets: Vec<Ipv4Addr>,

    /// The QDevice host (corosync-qnetd on the NAS or any small machine), set up by the node
    /// whose join makes the cluster two nodes (asked then at a terminal): without one, a
    /// two-node cluster has no automatic takeover (no majority survives a node's loss).
    #[arg(long, value_name = "IP")]
    pub qdevice: Option<Ipv4Addr>,

    /// Extension: the master's SSH host key fingerprint (`SHA256:...`, from
    /// `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the master). Without it the
    /// fingerprint is shown and must be confirmed at the terminal.
    #[arg(long, value_name = "SHA256:...")]
    pub master_fingerprint: Option<String>,
}

impl Answers {
    /// Reads an answers file; unknown keys are refused (a typo must not pass silently).
    pub fn load(file: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the answers file {}", file.display()))?;
        serde_yaml::from_str(&text).map_err(|e| {
            let at = e.location().map(|l| format!(":{}", l.line())).unwrap_or_default();
            anyhow::anyhow!(
                "{}{at}: {}",
                file.display(),
                e.to_string().split(" at line ").next().unwrap_or("")
            )
        })
    }

    /// `self` with every answer `flags` gives replacing the file's.
    pub fn overridden_by(self, flags: Answers) -> Answers {
        fn pick<T>(flag: Option<T>, file: Option<T>) -> Option<T> {
            flag.or(file)
        }
        fn pick_list<T>(flag: Vec<T>, file: Vec<T>) -> Vec<T> {
            if flag.is_empty() {
                file
            } else {
                flag
            }
        }
        Answers {
            priority: pick(flags.priority, self.priority),
            rack: pick(flags.rack, self.rack),
            slot: pick(flags.slot, self.slot),
            nics: pick_list(flags.nics, self.nics),
            wan_interface: pick(flags.wan_interface, self.wan_interface),
            domain: pick(flags.domain, self.domain),
            admin_email: pick(flags.admin_email, self.admin_email),
            external_network: pick(flags.external_network, self.external_network),
            external_gateway: pick(flags.external_gateway, self.external_gateway),
            master_ip: pick(flags.master_ip, self.master_ip),
            router_proxmox_ip: pick(flags.router_proxmox_ip, self.router_proxmox_ip),
            router_nas_ip: pick(flags.router_nas_ip, self.router_nas_ip),
            router_vm_ips: pick_list(flags.router_vm_ips, self.router_vm_ips),
            router_admin_user: pick(flags.router_admin_user, self.router_admin_user),
            router_archive: pick(flags.router_archive, self.router_archive),
            smtp_host: pick(flags.smtp_host, self.smtp_host),
            smtp_port: pick(flags.smtp_port, self.smtp_port),
            smtp_from: pick(flags.smtp_from, self.smtp_from),
            uplink_targets: pick_list(flags.uplink_targets, self.uplink_targets),
            qdevice: pick(flags.qdevice, self.qdevice),
            master_fingerprint: pick(flags.master_fingerprint, self.master_fingerprint),
        }
    }
}

/// Where missing answers come from: the terminal, or nowhere (automation: missing is an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asking {
    Terminal,
    Never,
}

/// Fills one answer: given, else asked (with its default shown), else its default, else an
/// error naming the flag and the answers-file key.
pub fn resolve<T>(given: Option<T>, key: &str, prompt: &str, default: Option<T>, asking: Asking) -> Result<T>
where
    T: Clone + std::fmt::Display + std::str::FromStr,
    T::Err: std::fmt::Display,
{
    if let Some(value) = given {
        return Ok(value);
    }
    match asking {
        Asking::Terminal => {
            let mut input = dialoguer::Input::<String>::new().with_prompt(prompt);
            if let Some(d) = &default {
                input = input.default(d.to_string());
            }
            let text = input
                .validate_with(|s: &String| s.trim().parse::<T>().map(|_| ()).map_err(|e| e.to_string()))
                .interact_text()?;
            Ok(text.trim().parse::<T>().map_err(|e| anyhow::anyhow!("{e}"))?)
        }
        Asking::Never => default.ok_or_else(|| missing(key)),
    }
}

/// Asks at the terminal for an address that may be left out (empty: `None`).
pub fn ask_optional_ip(prompt: &str) -> Result<Option<Ipv4Addr>> {
    let text = dialoguer::Input::<String>::new()
        .with_prompt(prompt)
        .allow_empty(true)
        .validate_with(|s: &String| {
            if s.trim().is_empty() {
                Ok(())
            } else {
                s.trim().parse::<Ipv4Addr>().map(|_| ()).map_err(|e| e.to_string())
            }
        })
        .interact_text()?;
    Ok(text.trim().parse().ok())
}

/// The error for an answer nobody gave.
pub fn missing(key: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "missing answer '{key}': give it as --{} or as the key '{key}' in the answers file",
        key.replace('_', "-")
    )
}

/// A yes/no confirmation at the terminal; automation (no terminal) must pass `--yes`.
pub fn confirm(prompt: &str, default: bool, asking: Asking) -> Result<bool> {
    match asking {
        Asking::Terminal => Ok(dialoguer::Confirm::new().with_prompt(prompt).default(default).interact()?),
        Asking::Never => bail!("{prompt} - no terminal to ask: run with --yes to proceed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_lists_are_replaced_whole() {
        let file: Answers = serde_yaml::from_str("priority: 20\nnics: [eth0, eth1]\nrack: r1\n").unwrap();
        let flags = Answers { priority: Some(70), nics: vec!["eth2".into()], ..Answers::default() };
        let merged = file.overridden_by(flags);
        assert_eq!(merged.priority, Some(70));
        assert_eq!(merged.nics, vec!["eth2".to_string()]);
        assert_eq!(merged.rack.as_deref(), Some("r1"));
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("answers.yaml");
        std::fs::write(&file, "priority: 20\nprioritty: 30\n").unwrap();
        let err = Answers::load(&file).unwrap_err().to_string();
        assert!(err.contains("answers.yaml:2") && err.contains("prioritty"), "{err}");
    }

    #[test]
    fn a_missing_answer_names_its_flag_and_key() {
        let err = resolve::<String>(None, "router_admin_user", "?", None, Asking::Never).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing answer 'router_admin_user': give it as --router-admin-user or as the key \
             'router_admin_user' in the answers file"
        );
        assert_eq!(resolve(None, "priority", "?", Some(50u8), Asking::Never).unwrap(), 50);
    }
}
