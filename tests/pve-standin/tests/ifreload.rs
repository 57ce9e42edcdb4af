//! `ifreload -a` of the stand-in in a throw-away network namespace shaped like a lab node
//! (`eth0` with the node's address, `eth1` without), reading a file given with `-i`.
//! Runs as root.

use cias_tests::netns::Netns;

const PROXMOX: &str = "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet manual\n\n\
    auto vmbr0\niface vmbr0 inet static\n\taddress 10.254.0.1/8\n\tgateway 10.0.0.254\n\
    \tbridge-ports eth0\n\tbridge-stp off\n\tbridge-fd 0\n\nsource /etc/network/interfaces.d/*\n";

struct Node {
    ns: Netns,
    dir: tempfile::TempDir,
}

impl Node {
    fn new(tag: &str) -> Self {
        let ns = Netns::with_links(tag, &["eth0", "eth1"]).unwrap();
        ns.exec_ok(&["ip", "addr", "add", "10.254.1.1/8", "dev", "eth0"]).unwrap();
        Self { ns, dir: tempfile::tempdir().unwrap() }
    }

    /// `ifreload ARGS -i FILE` with `interfaces` as FILE: (exit code, stdout + stderr).
    fn ifreload(&self, interfaces: &str, args: &[&str]) -> (i32, String) {
        let file = self.dir.path().join("interfaces");
        std::fs::write(&file, interfaces).unwrap();
        let mut argv = vec![env!("CARGO_BIN_EXE_pve-standin"), "ifreload"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["-i", file.to_str().unwrap()]);
        self.ns.exec(&argv).unwrap()
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut argv = vec!["ip"];
        argv.extend_from_slice(args);
        self.ns.exec_ok(&argv).unwrap()
    }

    /// Links, IPv4 addresses and routes (no timers or counters, which move by themselves).
    fn state(&self) -> String {
        self.ip(&["-o", "link"]) + &self.ip(&["-4", "-br", "addr"]) + &self.ip(&["route"])
    }

    fn assert_bridged(&self) {
        let eth0 = self.ip(&["-o", "link", "show", "eth0"]);
        assert!(eth0.contains("master vmbr0") && eth0.contains(",UP"), "{eth0}");
        assert_eq!(self.ip(&["-4", "-o", "addr", "show", "dev", "eth0"]), "", "eth0 keeps no address");
        let vmbr0 = self.ip(&["-4", "-br", "addr", "show", "dev", "vmbr0"]);
        assert!(vmbr0.ends_with(" 10.254.0.1/8 \n"), "{vmbr0:?}");
        assert!(self.ip(&["-o", "link", "show", "vmbr0"]).contains(",UP"));
        let bridge = self.ip(&["-d", "link", "show", "vmbr0"]);
        assert!(bridge.contains("forward_delay 0 ") && bridge.contains("stp_state 0 "), "{bridge}");
        assert_eq!(
            self.ip(&["route", "show", "default"]),
            "default via 10.0.0.254 dev vmbr0 proto kernel linkdown \n"
        );
    }
}

#[test]
fn the_proxmox_file_bridges_eth0_moves_the_address_and_a_second_run_changes_nothing() {
    let node = Node::new("ifr-fresh");
    assert_eq!(node.ifreload(PROXMOX, &["-a"]), (0, String::new()));
    node.assert_bridged();
    assert!(node.ip(&["-o", "link", "show", "eth1"]).contains(",UP"), "eth1 is left as it was");
    let before = node.state();
    assert_eq!(node.ifreload(PROXMOX, &["-a"]), (0, String::new()));
    assert_eq!(node.state(), before);
}

#[test]
fn a_bridge_made_by_hand_is_reconciled() {
    let node = Node::new("ifr-hand");
    for argv in [
        &["ip", "addr", "del", "10.254.1.1/8", "dev", "eth0"][..],
        &["ip", "link", "add", "vmbr0", "type", "bridge"],
        &["ip", "link", "set", "eth0", "master", "vmbr0"],
        &["ip", "addr", "add", "10.254.1.1/8", "dev", "vmbr0"],
        &["ip", "link", "set", "vmbr0", "up"],
    ] {
        node.ns.exec_ok(argv).unwrap();
    }
    assert_eq!(node.ifreload(PROXMOX, &["-a"]), (0, String::new()));
    node.assert_bridged();
}

#[test]
fn a_bond_is_refused_before_anything_changes() {
    let node = Node::new("ifr-bond");
    let before = node.state();
    let bonded = "auto eth0\niface eth0 inet manual\nauto eth1\niface eth1 inet manual\n\n\
        auto bond0\niface bond0 inet manual\n\tbond-slaves eth0 eth1\n\tbond-miimon 100\n\tbond-mode active-backup\n\n\
        auto vmbr0\niface vmbr0 inet static\n\taddress 10.254.0.1/8\n\tbridge-ports bond0\n";
    let (code, out) = node.ifreload(bonded, &["-a"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("error: bond0: cannot create bond: this kernel has no bonding support"), "{out}");
    assert_eq!(node.state(), before);
}

#[test]
fn arguments_addresses_and_gateways_as_ifupdown2_takes_them() {
    let node = Node::new("ifr-misc");
    let (code, out) = node.ifreload("", &[]);
    assert_eq!(code, 90);
    assert!(out.ends_with("error: '-a' or '-c' or '-allow' option is required\n"), "{out}");
    // Not marked auto: left alone. An old-style netmask; a gateway outside every subnet.
    let file = "iface eth0 inet manual\n\nauto eth1\niface eth1 inet static\n address 192.168.56.7\n \
                netmask 255.255.255.0\n gateway 10.0.0.254\n\nauto eth9\niface eth9 inet manual\n";
    let (code, out) = node.ifreload(file, &["-a"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "warning: eth1: gateway 10.0.0.254 is not in a subnet of eth1: no default route set\n\
         warning: eth9: interface not recognized - please check interface configuration\n"
    );
    assert!(node.ip(&["-4", "-br", "addr", "show", "dev", "eth1"]).ends_with(" 192.168.56.7/24 \n"));
    assert!(node.ip(&["-4", "-br", "addr", "show", "dev", "eth0"]).ends_with(" 10.254.1.1/8 \n"));
    assert_eq!(node.ip(&["route", "show", "default"]), "");
}
