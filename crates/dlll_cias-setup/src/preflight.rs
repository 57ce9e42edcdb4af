//! Checks before anything changes (like `kubeadm init`'s preflight): every fact the plan
//! depends on is read from the node with read-only commands, and every problem is reported at
//! once, so the administrator fixes them all before the first change.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use cias_core::disks::{self, Disk, LoopDevices};
use cias_core::host::{Command, Host};
use cias_core::installed::PACKAGES;
use serde::Deserialize;

/// Hardware below which a node is installed as "never master" (SPEC section 6).
const MIN_RAM_BYTES: u64 = 8 * 1000 * 1000 * 1000;
const MIN_DISK_BYTES: u64 = 80 * 1000 * 1000 * 1000;

#[derive(Debug, Default)]
pub struct Report {
    /// Refusals: setup stops before changing anything.
    pub errors: Vec<String>,
    /// Warnings: setup goes on (e.g. weak hardware makes the node "never master").
    pub warnings: Vec<String>,
    /// Facts, printed in the plan.
    pub facts: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Facts {
    pub node_name: String,
    pub nics: Vec<String>,
    pub weak_hardware: bool,
    pub master_reachable: bool,
    pub disks: Vec<Disk>,
    pub admin_email: Option<String>,
}

/// `ip -j link` entries, the fields we read.
#[derive(Debug, Deserialize)]
struct Link {
    ifname: String,
    link_type: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
    linkinfo: Option<LinkInfo>,
}

#[derive(Debug, Deserialize)]
struct LinkInfo {
    info_kind: Option<String>,
}

fn query(host: &dyn Host, argv: &[&str]) -> Result<String> {
    Ok(host.run(&Command::query_argv(argv))?.stdout)
}

/// The node's disks and their verdicts: lsblk's view, each seemingly blank disk probed again.
pub fn node_disks(host: &dyn Host, loops: LoopDevices) -> Result<Vec<Disk>> {
    let mut found = disks::parse_lsblk(&host.run(&disks::lsblk_command())?.stdout, loops)?;
    for disk in found.iter_mut().filter(|d| d.verdict == disks::Verdict::Format) {
        let probe = host.execute(&disks::probe_command(&disk.path))?;
        disks::apply_probe(disk, probe.code, &probe.stdout);
    }
    Ok(found)
}

pub fn port_open(host: &dyn Host, address: &str, port: u16) -> Result<bool> {
    Ok(cias_core::host::port_open(host, address, port)?)
}

/// Physical-like NICs: Ethernet links that are not bridges, bonds, VLANs, taps or firewall
/// veths of guests (veth is allowed: containers and labs give their NICs that way).
fn nics(links: &[Link]) -> Vec<String> {
    links
        .iter()
        .filter(|l| l.link_type.as_deref() == Some("ether"))
        .filter(|l| {
            let kind = l.linkinfo.as_ref().and_then(|i| i.info_kind.as_deref());
            !matches!(kind, Some("bridge" | "bond" | "vlan" | "tun" | "dummy" | "macvlan"))
        })
        .filter(|l| !["tap", "fw", "veth"].iter().any(|p| l.ifname.starts_with(p)))
        .map(|l| l.ifname.clone())
        .collect()
}

fn meminfo_bytes(meminfo: &str) -> Option<u64> {
    let kib = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    Some(kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok()? * 1024)
}

/// root's e-mail from the Proxmox install (`/etc/pve/user.cfg`: `user:root@pam:1:0:::MAIL::`).
fn proxmox_admin_email(user_cfg: &str) -> Option<String> {
    user_cfg
        .lines()
        .find_map(|l| l.strip_prefix("user:root@pam:"))
        .and_then(|rest| rest.split(':').nth(4))
        .filter(|m| m.contains('@'))
        .map(str::to_string)
}

/// The binaries keepalived, cron and the other nodes call on this node.
const TOOLKIT: &[&str] = &[
    "dlll_cias-switch-to-master",
    "dlll_cias-fence",
    "dlll_cias-watch",
    "dlll_cias-backup-zentyal",
    "dlll_cias-remove-node",
    "dlll_cias-escape",
];

/// The packages of [`PACKAGES`] that `dpkg-query -W -f '${Package} ${db:Status-Abbrev}\n'`
/// does not list as installed (`ii`); a package dpkg never heard of is not listed at all.
fn missing_packages(listed: &str) -> Vec<&'static str> {
    let installed: Vec<&str> = listed
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            (words.next()? == "ii").then_some(name)
        })
        .collect();
    PACKAGES.iter().copied().filter(|p| !installed.contains(p)).collect()
}

/// Reads the node. `master_vip`: where a running cluster's master answers SSH.
pub fn check(
    host: &dyn Host,
    master_vip: Ipv4Addr,
    loops: LoopDevices,
    wipe: &[String],
) -> Result<(Facts, Report)> {
    let mut report = Report::default();
    let uid = query(host, &["id", "-u"])?;
    if uid.trim() != "0" {
        report.errors.push("setup must run as root".into());
    }
    // Not there at all (it cannot even start) is the same answer as failing.
    match host.execute(&Command::query_argv(&["pveversion"])) {
        Ok(out) if out.success() => report.facts.push(("Proxmox".into(), out.stdout.trim().to_string())),
        Err(e) if !matches!(e, cias_core::host::HostError::Spawn { .. }) => return Err(e.into()),
        _ => report
            .errors
            .push("Proxmox VE is not installed here (`pveversion` failed): install it first".into()),
    }
    let node_name = query(host, &["uname", "-n"])?.trim().split('.').next().unwrap_or("").to_string();
    report.facts.push(("Proxmox node name".into(), node_name.clone()));
    // It goes into keepalived's and cron's files: one DNS label, as Proxmox requires too.
    let label_char = |c: char| c.is_ascii_alphanumeric() || c == '-';
    if node_name.is_empty()
        || node_name.len() > 63
        || !node_name.chars().all(label_char)
        || node_name.starts_with('-')
        || node_name.ends_with('-')
    {
        report.errors.push(format!(
            "the host name '{node_name}' is not a valid Proxmox node name (letters, digits and '-', at most 63)"
        ));
    }

    let links: Vec<Link> = serde_json::from_str(&query(host, &["ip", "-j", "-d", "link", "show"])?)
        .context("cannot read `ip -j link`")?;
    let nics = nics(&links);
    let up: Vec<&String> = nics
        .iter()
        .filter(|n| links.iter().any(|l| &l.ifname == *n && l.flags.iter().any(|f| f == "LOWER_UP")))
        .collect();
    if nics.is_empty() {
        report.errors.push("no network interface found".into());
    } else if up.is_empty() {
        report.errors.push(format!(
            "the network is down: no link on {} - plug in a cable (or fix the switch) and run setup again",
            nics.join(", ")
        ));
    }
    report.facts.push(("NICs".into(), format!("{} (link up: {})", nics.join(", "), up.len())));

    let cpuinfo = query(host, &["cat", "/proc/cpuinfo"])?;
    let virt = cpuinfo.lines().any(|l| l.starts_with("flags") && (l.contains(" vmx") || l.contains(" svm")));
    if !virt {
        report
            .warnings
            .push("the CPU shows no virtualisation flags (vmx/svm): VMs will run without KVM, slowly".into());
    }
    let ram = meminfo_bytes(&query(host, &["cat", "/proc/meminfo"])?).unwrap_or(0);
    let root_size: u64 = query(host, &["df", "--output=size", "-B1", "/"])?
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let weak_hardware = ram < MIN_RAM_BYTES || root_size < MIN_DISK_BYTES;
    if weak_hardware {
        report.warnings.push(format!(
            "RAM {} GB / system disk {} GB is below 8 GB / 80 GB: this node is installed with priority 0 (never master)",
            ram / 1_000_000_000,
            root_size / 1_000_000_000
        ));
    }
    report.facts.push(("RAM".into(), format!("{} GB", ram / 1_000_000_000)));

    let listed = host.execute(&Command::query_argv(
        &[&["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\\n"], PACKAGES].concat(),
    ))?;
    let missing = missing_packages(&listed.stdout);
    if !missing.is_empty() {
        report.errors.push(format!(
            "missing packages: {} - install them first: apt install {} (the moosefs-* packages come from \
             Debian or from MooseFS' own repository)",
            missing.join(", "),
            missing.join(" ")
        ));
    }
    let mut absent = Vec::new();
    for binary in TOOLKIT {
        let path = format!("{}/{binary}", cias_core::paths::BIN_DIR);
        if !host.execute(&Command::query_argv(&["test", "-x", &path]))?.success() {
            absent.push(path);
        }
    }
    if !absent.is_empty() {
        report.errors.push(format!(
            "the dlll-cias toolkit is incomplete, missing: {} - install every dlll_cias-* binary (the same version) first",
            absent.join(", ")
        ));
    }
    let master_reachable = port_open(host, &master_vip.to_string(), 22)?;
    report.facts.push((
        "Master".into(),
        if master_reachable {
            format!("{master_vip} answers: this node extends the cluster")
        } else {
            format!("none at {master_vip}: this node installs a new cluster")
        },
    ));

    let mut disks = node_disks(host, loops)?;
    if let Err(e) = disks::approve(&mut disks, wipe) {
        report.errors.push(e.to_string());
    }
    if disks::to_format(&disks).next().is_none() {
        report.warnings.push("no disk can be given to MooseFS: this node stores no chunks".into());
    }
    let user_cfg = host.execute(&Command::query_argv(&["cat", "/etc/pve/user.cfg"]))?;
    let admin_email = user_cfg.success().then(|| proxmox_admin_email(&user_cfg.stdout)).flatten();
    Ok((Facts { node_name, nics, weak_hardware, master_reachable, disks, admin_email }, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nics_are_ethernet_ports_not_bridges_or_guest_devices() {
        let json = r#"[{"ifname":"lo","link_type":"loopback","flags":["UP"]},
            {"ifname":"eno1","link_type":"ether","flags":["UP","LOWER_UP"]},
            {"ifname":"eth1","link_type":"ether","flags":[],"linkinfo":{"info_kind":"veth"}},
            {"ifname":"vmbr0","link_type":"ether","flags":["UP"],"linkinfo":{"info_kind":"bridge"}},
            {"ifname":"tap100i0","link_type":"ether","flags":["UP"],"linkinfo":{"info_kind":"tun"}},
            {"ifname":"fwpr100p0","link_type":"ether","flags":["UP"],"linkinfo":{"info_kind":"veth"}}]"#;
        let links: Vec<Link> = serde_json::from_str(json).unwrap();
        assert_eq!(nics(&links), vec!["eno1", "eth1"]);
    }

    #[test]
    fn packages_not_installed_are_named() {
        // dpkg-query 1.21 for a removed (config kept) package says `rc`; an unknown one is absent.
        let listed = "keepalived ii \nmoosefs-master ii \nmoosefs-metalogger rc \nmoosefs-chunkserver ii \n\
                      moosefs-client ii \nmoosefs-cgiserv ii \nmoosefs-cli ii \nfuse3 ii \niputils-ping ii \n\
                      iputils-arping ii \n";
        assert_eq!(missing_packages(listed), ["moosefs-metalogger", "nftables"]);
        assert_eq!(missing_packages(""), PACKAGES);
    }

    #[test]
    fn facts_from_proc_and_proxmox_files() {
        assert_eq!(meminfo_bytes("MemTotal:       16314208 kB\nMemFree: 1 kB\n"), Some(16314208 * 1024));
        let user_cfg = "user:root@pam:1:0:::admin@example.com:::\n\ngroup:admins:root@pam::\n";
        assert_eq!(proxmox_admin_email(user_cfg).as_deref(), Some("admin@example.com"));
        assert_eq!(proxmox_admin_email("user:root@pam:1:0::::::\n"), None);
    }
}
