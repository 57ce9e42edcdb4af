//! The stand-in's `pve-firewall` on a real kernel, in a throw-away network namespace: the table
//! it compiles from the files dlll-cias writes loads into nftables, the daemon applies it, follows
//! file changes, says `Status: enabled/running`, and removes the table when it stops. (What the
//! table does to packets is proved in the lab, `tests/tests/standin_firewall.rs`.)
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cias_tests::netns::Netns;

const CLUSTER: &str = "# Written by dlll-cias\n[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\npolicy_out: ACCEPT\n";
const HOST: &str = "# Written by dlll-cias\n[OPTIONS]\nenable: 0\n";
const VM: &str = "# Written by dlll-cias\n[OPTIONS]\nenable: 1\nipfilter: 1\nmacfilter: 1\ndhcp: 1\n\
    policy_in: ACCEPT\npolicy_out: ACCEPT\n\n[IPSET ipfilter-net0] # the address of VMID 101, and the DHCP range\n\
    10.0.1.1\n10.251.0.0/16\n";

struct Node {
    ns: Netns,
    dir: tempfile::TempDir,
}

impl Node {
    fn new(tag: &str) -> Node {
        let node = Node { ns: Netns::with_links(tag, &[]).unwrap(), dir: tempfile::tempdir().unwrap() };
        for (path, text) in [
            ("pve/firewall/cluster.fw", CLUSTER),
            ("pve/nodes/node1/host.fw", HOST),
            ("pve/firewall/101.fw", VM),
            (
                "pve/nodes/node1/qemu-server/101.conf",
                "memory: 512\nnet0: virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1\n",
            ),
        ] {
            node.write(path, text);
        }
        node
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// `pve-standin ARGS` as node1 inside the namespace.
    fn command(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns.name(), env!("CARGO_BIN_EXE_pve-standin")])
            .args(args)
            .env("PVE_STANDIN_ROOT", d.join("pve"))
            .env("PVE_STANDIN_RUN", d.join("run"))
            .env("PVE_STANDIN_NODE", "node1")
            .env("PVE_STANDIN_FIREWALL_RUN", d);
        cmd
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command(args).output().unwrap();
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
    }

    /// The node's table as nft lists it, empty when there is none.
    fn live_table(&self) -> String {
        let (code, out) = self.ns.exec(&["nft", "list", "table", "bridge", "pve_standin_fw"]).unwrap();
        if code == 0 {
            out
        } else {
            String::new()
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, name: &str) {
    assert!(Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

#[test]
fn compile_prints_a_table_nftables_loads() {
    let node = Node::new("psfwc");
    let (code, stdout, stderr) = node.run(&["pve-firewall", "compile"]);
    assert_eq!((code, stderr.as_str()), (0, ""), "{stdout}");
    let table = stdout
        .strip_prefix("nftables ruleset (table bridge pve_standin_fw):\n")
        .and_then(|t| t.strip_suffix("\ndetected changes\n"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(table.contains("\t\tarp saddr ip != { 10.0.1.1, 10.251.0.0/16 } drop\n"), "{table}");
    let script = format!("table bridge pve_standin_fw\ndelete table bridge pve_standin_fw\n{table}");
    std::fs::write(node.dir.path().join("table.nft"), script).unwrap();
    node.ns.exec_ok(&["nft", "-f", &node.dir.path().join("table.nft").to_string_lossy()]).unwrap();
    assert!(node.live_table().contains("ip saddr != @PVEFW-101-ipfilter-net0-v4 drop"));
    let (_, stdout, _) = node.run(&["pve-firewall", "compile"]);
    assert!(stdout.ends_with("\nno changes\n"), "the live table is what the files give: {stdout}");

    node.write("pve/firewall/cluster.fw", "[OPTIONS]\nenable: 0\n");
    let (_, stdout, _) = node.run(&["pve-firewall", "compile"]);
    assert_eq!(
        stdout, "nftables ruleset (table bridge pve_standin_fw):\n\ndetected changes\nfirewall disabled\n",
        "the table would go"
    );
}

#[test]
fn the_daemon_applies_follows_the_files_and_clears_its_table_on_stop() {
    let node = Node::new("psfwd");
    let (_, stdout, _) = node.run(&["pve-firewall", "status"]);
    assert_eq!(stdout, "Status: enabled/stopped\n");
    let log = std::fs::File::create(node.dir.path().join("log")).unwrap();
    let mut daemon = node
        .command(&["pve-firewall", "start", "--debug"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for("the table", Duration::from_secs(5), || node.live_table().contains("tap101i0-OUT"));
    assert!(Path::new(&node.dir.path().join("pve-firewall.pid")).exists());
    let (code, stdout, _) = node.run(&["pve-firewall", "status"]);
    assert_eq!((code, stdout.as_str()), (0, "Status: enabled/running\n"));
    let (code, _, stderr) = node.run(&["pve-firewall", "start", "--debug"]);
    assert_eq!(code, 255);
    assert!(stderr.contains("daemon already started (pid = "), "{stderr}");

    // A changed file is a pending change until the next round (now, on SIGHUP).
    node.write("pve/firewall/101.fw", &VM.replace("10.0.1.1\n", "10.0.1.9\n"));
    let (_, stdout, _) = node.run(&["pve-firewall", "status"]);
    assert_eq!(stdout, "Status: enabled/running (pending changes)\n");
    signal(&daemon, "HUP");
    wait_for("the new address", Duration::from_secs(5), || node.live_table().contains("10.0.1.9"));

    // Rules are not applied, and the log says so once.
    node.write("pve/firewall/101.fw", &format!("{VM}\n[RULES]\nIN SSH(ACCEPT) -i net0\n"));
    signal(&daemon, "HUP");
    wait_for("the warning", Duration::from_secs(5), || node.log().contains("rule not applied"));
    signal(&daemon, "HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(node.log().matches("rule not applied").count(), 1, "{}", node.log());

    signal(&daemon, "TERM");
    assert!(daemon.wait().unwrap().success());
    assert!(node.log().contains("clear PVE-generated firewall rules\n"), "{}", node.log());
    assert_eq!(node.live_table(), "", "the table is gone");
    let (_, stdout, _) = node.run(&["pve-firewall", "status"]);
    assert_eq!(stdout, "Status: enabled/stopped\n");
}
