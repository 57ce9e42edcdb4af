//! `cargo xtask demo`: the installer's main job on the lab - node 1 installs a new cluster from
//! an answers file, the other nodes extend it - exactly as an administrator would run it.
//! The lab tests drive the same functions.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::lab::{ExtraFile, Lab, Node, Output};

/// The toolkit's binaries, installed into every node's `/usr/sbin` (as the package does).
pub const BINARIES: &[&str] = &[
    "dlll_cias-setup",
    "dlll_cias-switch-to-master",
    "dlll_cias-fence",
    "dlll_cias-watch",
    "dlll_cias-backup-zentyal",
    "dlll_cias-vmid-map",
    "dlll_cias-remove-node",
    "dlll_cias-escape",
    "dlll_cias-status",
    "dlll_cias-router",
    "dlll_cias-nas",
];
/// The router administrator password the demo answers with.
pub const ROUTER_ADMIN_PASSWORD: &str = "Router-Admin-1";
/// The router's delivered archive, as a vendor would ship it.
pub const ROUTER_ARCHIVE: &str = "/data/cias/router/vzdump-qemu-100-2026_01_05-02_00_00.vma";
pub const ANSWERS: &str = "/root/cias-answers.yaml";
pub const SECRETS: &str = "/root/cias-secrets.yaml";

/// Builds the binaries (debug, like the rest of the tests) and returns their directory.
pub fn build() -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let mut args = vec!["build", "--quiet"];
    for b in BINARIES {
        args.extend(["-p", b]);
    }
    duct::cmd("cargo", &args).run().context("cannot build the toolkit's binaries")?;
    Ok(target.join("debug"))
}

/// Puts the binaries into every node.
pub fn install_binaries(lab: &Lab) -> Result<()> {
    let dir = build()?;
    for b in BINARIES {
        lab.install(&ExtraFile {
            source: dir.join(b),
            dest: format!("{}/{b}", cias_core::paths::BIN_DIR),
            mode: 0o755,
        })?;
    }
    Ok(())
}

/// The answers of the first node: the lab's external network is the example one; mail goes
/// to the lab's SMTP server; the uplink check pings the lab driver (nothing leaves the lab).
pub fn first_node_answers() -> String {
    "priority: 80\n\
     domain: lab.example\n\
     rack: master-rack\n\
     slot: a\n\
     nics: [eth0]\n\
     wan_interface: eth1\n\
     admin_email: admin@lab.example\n\
     external_network: 192.168.56.0/24\n\
     external_gateway: 192.168.56.1\n\
     master_ip: 192.168.56.101\n\
     router_proxmox_ip: 192.168.56.102\n\
     router_nas_ip: 192.168.56.103\n\
     router_vm_ips: [192.168.56.104, 192.168.56.105]\n\
     router_admin_user: labadmin\n\
     router_archive: /root/router.vma\n\
     smtp_host: 10.254.255.25\n\
     smtp_from: dlll-cias@lab.example\n\
     uplink_targets: [{UPLINK_TARGET}]\n"
        .replace("{UPLINK_TARGET}", &crate::lab::addr::UPLINK_TARGET.to_string())
}

/// The answers of an extending node; `fingerprint` is the master's SSH host key's.
pub fn extension_answers(priority: u8, fingerprint: &str) -> String {
    format!("priority: {priority}\nrack: master-rack\nslot: b\nnics: [eth0]\nwan_interface: eth1\nmaster_fingerprint: \"{fingerprint}\"\n")
}

/// Writes a file inside a node (quoted heredoc: nothing is expanded).
pub fn put(lab: &Lab, node: Node, path: &str, text: &str, mode: &str) -> Result<()> {
    lab.sh(node, &format!("install -D -m {mode} /dev/stdin {path} <<'CIAS_EOF'\n{text}CIAS_EOF\n"))?;
    Ok(())
}

/// Prepares node 1: answers, secrets and the router's factory archive.
pub fn prepare_first(lab: &Lab, node: Node) -> Result<()> {
    put(lab, node, ANSWERS, &first_node_answers(), "0600")?;
    put(lab, node, SECRETS, &format!("router_admin_password: {ROUTER_ADMIN_PASSWORD}\n"), "0600")?;
    lab.sh(node, "/usr/local/lib/pve-standin/pve-standin make-router-archive /root/router.vma")?;
    Ok(())
}

/// The SHA256 fingerprint of a node's SSH host key (what the administrator reads on the master).
pub fn host_key_fingerprint(lab: &Lab, node: Node) -> Result<String> {
    let out = lab.sh(node, "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub")?;
    out.split_whitespace().nth(1).map(str::to_string).context("no fingerprint from ssh-keygen")
}

/// Prepares an extending node: answers with the master's fingerprint, the master's root password.
pub fn prepare_extension(lab: &Lab, node: Node, master: Node, priority: u8) -> Result<()> {
    put(lab, node, ANSWERS, &extension_answers(priority, &host_key_fingerprint(lab, master)?), "0600")?;
    let secrets = format!("master_root_password: {}\n", crate::lab::standin::ROOT_PASSWORD);
    put(lab, node, SECRETS, &secrets, "0600")?;
    Ok(())
}

/// Runs the installer on `node` with the prepared answers (plus `extra` arguments).
pub fn setup(lab: &Lab, node: Node, extra: &[&str]) -> Result<Output> {
    let mut argv =
        vec!["dlll_cias-setup", "--answers", ANSWERS, "--secrets-file", SECRETS, "--loop-disks", "--yes"];
    argv.extend_from_slice(extra);
    lab.exec(node, &argv)
}

fn setup_ok(lab: &Lab, node: Node) -> Result<Output> {
    let out = setup(lab, node, &[])?;
    if !out.success() {
        bail!("setup on {node} failed (exit {}):\n{}\n{}", out.status, out.stdout, out.stderr);
    }
    Ok(out)
}

/// The whole job: the binaries copied into every node, then [`setup_all`].
pub fn install_cluster(lab: &Lab) -> Result<()> {
    install_binaries(lab)?;
    setup_all(lab)
}

/// Setup on every node, whose toolkit is already there (copied in, or from the package): node 1
/// installs, every other node extends, one after the other. A two-node cluster gets a QDevice
/// on the lab's NAS.
pub fn setup_all(lab: &Lab) -> Result<()> {
    let nodes = lab.nodes().to_vec();
    let first = nodes[0];
    prepare_first(lab, first)?;
    eprintln!("demo: {first} installs the cluster");
    eprintln!("{}", setup_ok(lab, first)?.stdout);
    for &node in &nodes[1..] {
        prepare_extension(lab, node, first, 50)?;
        if nodes.len() == 2 {
            // The second of two nodes sets up the QDevice on the lab's NAS.
            lab.sh(node, &format!("echo 'qdevice: {}' >> {ANSWERS}", crate::lab::nas::address()))?;
        }
        eprintln!("demo: {node} extends the cluster");
        eprintln!("{}", setup_ok(lab, node)?.stdout);
    }
    Ok(())
}

/// `cargo xtask demo`: a fresh lab, the cluster installed, where to look next.
pub fn run(nodes: u8) -> Result<()> {
    let lab = Lab::up(&crate::lab::LabConfig { nodes, ..Default::default() })?;
    install_cluster(&lab)?;
    eprintln!(
        "demo: the cluster is up.\n  cargo xtask lab status            VIPs, services and mounts per node\n  \
         cargo xtask lab exec node1 -- pvecm status\n  \
         cargo xtask lab exec node1 -- cat /data/cias/nodes/node1/setup.log\n  \
         cargo xtask lab mail                the administrator's mail\n  \
         cargo xtask lab down                remove everything"
    );
    Ok(())
}
