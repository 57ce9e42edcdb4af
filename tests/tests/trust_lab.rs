//! The trust boundary in the lab (SPEC section 8, issue 12): on a cluster installed by
//! dlll_cias-setup, VRRP adverts from a LAN device that is no node change nothing, MooseFS
//! wants the cluster's password and a node's address, root's SSH password works only from the
//! nodes' network, a VM cannot claim a node's address, and every node's peers and filter follow
//! a node that leaves. Runs as root (~3 min).

use std::time::{Duration, Instant};

use cias_tests::cluster_probe::{
    acked, installed_lab, master, sh, start_writer, stepper, wait_for, writer_lost_nothing, EXTERNAL_VIP,
    MASTER_VIP,
};
use xtask::lab::{Lab, Node};

/// A LAN device that is no node: its own namespace on the lab's LAN bridge (`lab down` removes
/// every `cias-lab*` namespace).
const ROGUE: &str = "cias-lab-rogue";
const ROGUE_IP: &str = "10.254.200.1";

/// Runs a command in the machine's own namespaces (the lab's bridges live in one of them).
fn host(argv: &[&str]) -> String {
    xtask::lab::run::cmd(argv).run().unwrap()
}

fn plug_rogue() {
    host(&["ip", "netns", "add", ROGUE]);
    host(&["ip", "link", "add", "rogue-lan", "type", "veth", "peer", "name", "lan", "netns", ROGUE]);
    host(&["ip", "link", "set", "rogue-lan", "netns", "cias-lab-net"]);
    host(&["ip", "-n", "cias-lab-net", "link", "set", "rogue-lan", "master", "lan", "up"]);
    host(&["ip", "-n", ROGUE, "addr", "add", &format!("{ROGUE_IP}/8"), "dev", "lan"]);
    host(&["ip", "-n", ROGUE, "link", "set", "lan", "up"]);
    host(&["ip", "-n", ROGUE, "link", "set", "lo", "up"]);
    // The VRRP group is on-link (no route leaves the lab).
    host(&["ip", "-n", ROGUE, "route", "add", "224.0.0.0/4", "dev", "lan"]);
}

/// VRRPv2 adverts at priority 255 for the cluster's VRID 51 and the master VIP, once a second
/// for `secs`, to the VRRP multicast group and to each of `targets` (keepalived's unicast
/// mode): exactly what a node's keepalived sends, from an address that is no node's.
const ADVERTS: &str = r#"
import socket, struct, sys, time
def checksum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
vip = socket.inet_aton(sys.argv[2])
body = struct.pack("!BBBBBBH", 0x21, 51, 255, 1, 0, 1, 0) + vip + b"\0" * 8
body = body[:6] + struct.pack("!H", checksum(body)) + body[8:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
end = time.time() + float(sys.argv[1])
sent = 0
while time.time() < end:
    for target in ["224.0.0.18"] + sys.argv[3:]:
        s.sendto(body, (target, 0)); sent += 1
    time.sleep(1)
print(sent)
"#;

fn mfsmaster_pid(lab: &Lab, node: Node) -> String {
    sh(lab, node, "systemctl show -p MainPID --value moosefs-master").trim().to_string()
}

/// The addresses in `node`'s nftables set of nodes, and its keepalived unicast peers.
fn trusted(lab: &Lab, node: Node) -> (String, String) {
    let set = sh(lab, node, "nft -j list set inet dlll_cias nodes | tr -d ' \\n'");
    let peers = sh(
        lab,
        node,
        "sed -n '/unicast_peer {/,/}/p' /etc/keepalived/keepalived.conf | grep -o '[0-9.]*\\.[0-9]*' | sort | tr '\\n' ' '",
    );
    (set, peers)
}

fn registry_ip(lab: &Lab, node: Node) -> String {
    sh(
        lab,
        node,
        &format!(
            "awk '/ip:/ {{ip=$2}} /node_name: {}$/ {{print ip}}' /mnt/mfs/cias/registry.yaml",
            node.name()
        ),
    )
    .trim()
    .to_string()
}

#[test]
fn only_the_cluster_s_nodes_are_trusted() {
    let step = stepper();
    let (lab, _down) = installed_lab(3);
    let [n1, n2, n3] = [lab.nodes()[0], lab.nodes()[1], lab.nodes()[2]];
    let m = master(&lab);
    let ips: Vec<String> = [n1, n2, n3].iter().map(|n| registry_ip(&lab, *n)).collect();

    step("every node trusts exactly the three nodes and the VIP");
    for (i, node) in [n1, n2, n3].into_iter().enumerate() {
        let (set, peers) = trusted(&lab, node);
        for ip in ips.iter().chain([&MASTER_VIP.to_string()]) {
            assert!(set.contains(&format!("\"{ip}\"")), "{node}: {ip} missing from its filter: {set}");
        }
        let mut others: Vec<&str> =
            ips.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, ip)| ip.as_str()).collect();
        others.sort_unstable();
        assert_eq!(peers.split_whitespace().collect::<Vec<_>>(), others, "{node}'s keepalived peers");
    }

    step("VRRP adverts at priority 255 from a LAN device for 30 s change nothing");
    plug_rogue();
    let writer = [n1, n2, n3].into_iter().find(|n| *n != m).unwrap();
    start_writer(&lab, writer);
    let pid = mfsmaster_pid(&lab, m);
    let before = acked(&lab, writer);
    let mut argv: Vec<String> =
        ["ip", "netns", "exec", ROGUE, "python3", "-c", ADVERTS, "30", MASTER_VIP].map(String::from).to_vec();
    argv.extend(ips.iter().cloned());
    let rogue = std::thread::spawn(move || host(&argv.iter().map(String::as_str).collect::<Vec<_>>()));
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        assert!(
            cias_tests::cluster_probe::holds(&lab, m, MASTER_VIP),
            "{m} lost the master VIP after {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let sent: usize = rogue.join().unwrap().trim().parse().unwrap();
    assert!(sent >= 30 * 4, "the rogue sent {sent} adverts");
    assert_eq!(mfsmaster_pid(&lab, m), pid, "mfsmaster on {m} kept running");
    let dropped = sh(&lab, m, "nft list chain inet dlll_cias input");
    // nft names the protocol when /etc/protocols does (netbase, as on Proxmox VE).
    assert!(
        ["112", "vrrp"].iter().any(|p| dropped.contains(&format!("ip protocol {p} ip saddr != @nodes drop"))),
        "{dropped}"
    );
    assert!(acked(&lab, writer) > before + 100, "the writer on {writer} went on writing");
    writer_lost_nothing(&lab, writer);

    step("MooseFS: a mount needs the cluster's password");
    let other = writer;
    let refused = lab
        .exec(
            other,
            &[
                "sh",
                "-c",
                "mkdir -p /tmp/nopw && mfsmount /tmp/nopw -H cias-pve-master -o mfscfgfile=/dev/null 2>&1",
            ],
        )
        .unwrap();
    assert!(!refused.success(), "a mount without the password worked: {}", refused.stdout);
    let with = lab
        .exec(
            other,
            &["sh", "-c", "mkdir -p /tmp/pw && mfsmount /tmp/pw -H cias-pve-master -o mfscfgfile=/dev/null,mfspassword=$(sed -n s/^mfspassword=//p /etc/mfs/mfsmount.cfg) && ls /tmp/pw/cias >/dev/null && umount /tmp/pw"],
        )
        .unwrap();
    assert!(with.success(), "a mount with the password failed: {}{}", with.stdout, with.stderr);
    let mode = sh(&lab, other, "stat -c '%a %U:%G' /etc/mfs/mfsmount.cfg /etc/mfs/mfsexports.cfg");
    assert_eq!(mode, "600 root:root\n640 root:mfs\n");
    assert!(!sh(&lab, other, "ps -eo args").contains("mfspassword"), "the password shows in a command line");
    let rogue_connect = xtask::lab::run::cmd([
        "ip",
        "netns",
        "exec",
        ROGUE,
        "timeout",
        "3",
        "bash",
        "-c",
        &format!("echo > /dev/tcp/{MASTER_VIP}/9421"),
    ])
    .output()
    .unwrap();
    assert!(!rogue_connect.success(), "a device that is no node reached mfsmaster");

    step("a VM keeps to its own address; on it, it reaches the router but no node's service");
    // Created stopped: the master's watch gives it its firewall, then it starts.
    sh(
        &lab,
        writer,
        "qm create 101 --name tenant --memory 256 --scsi0 a_mfs:1 \
         --net0 virtio=BC:24:11:00:01:01,bridge=vmbr0 --ipconfig0 ip=10.0.1.1/8,gw=10.0.0.254",
    );
    sh(&lab, m, "dlll_cias-watch vmids");
    let fw = sh(&lab, writer, "cat /etc/pve/firewall/101.fw; qm config 101 | grep ^net0");
    assert!(fw.contains("ipfilter: 1") && fw.contains("\n10.0.1.1\n") && fw.contains(",firewall=1"), "{fw}");
    sh(&lab, writer, "qm start 101");
    let vm = |script: &str| lab.exec(writer, &["ip", "netns", "exec", "vm101", "sh", "-c", script]).unwrap();
    wait_for("VM 101 to reach the router", Duration::from_secs(30), || {
        vm("ping -c 1 -W 1 10.0.0.254").success()
    });
    let mfs = vm(&format!(
        "mkdir -p /tmp/vm101 && timeout 10 mfsmount /tmp/vm101 -H {MASTER_VIP} -o mfscfgfile=/dev/null,mfspassword=$(sed -n s/^mfspassword=//p /etc/mfs/mfsmount.cfg)"
    ));
    assert!(!mfs.success(), "a VM mounted MooseFS with the password: {}", mfs.stdout);
    assert!(
        !vm(&format!("timeout 3 bash -c 'echo > /dev/tcp/{}/22'", ips[0])).success(),
        "a VM reached a node's SSH"
    );
    for claimed in [registry_ip(&lab, m), MASTER_VIP.to_string()] {
        vm(&format!("ip addr flush dev eth0 && ip addr add {claimed}/8 dev eth0 && arping -c 2 -U -I eth0 {claimed} >/dev/null 2>&1; true"));
        for target in ips.iter().filter(|ip| **ip != claimed) {
            assert!(
                !vm(&format!("ping -c 1 -W 1 {target}")).success(),
                "the VM as {claimed} pinged {target}"
            );
            assert!(
                !vm(&format!("timeout 3 bash -c 'echo > /dev/tcp/{target}/22'")).success(),
                "the VM as {claimed} reached SSH on {target}"
            );
        }
        for node in [n1, n2, n3] {
            let neigh = sh(&lab, node, &format!("ip neigh show {claimed}"));
            assert!(
                !neigh.to_lowercase().contains("bc:24:11:00:01:01"),
                "{node} learnt the VM's MAC for {claimed}: {neigh}"
            );
        }
        assert!(cias_tests::cluster_probe::holds(&lab, m, MASTER_VIP), "{m} keeps the VIP");
    }
    vm("ip addr flush dev eth0 && ip addr add 10.0.1.1/8 dev eth0");
    wait_for("VM 101 back on its address", Duration::from_secs(10), || {
        vm("ping -c 1 -W 1 10.0.0.254").success()
    });

    step("root's SSH password works only from the nodes' network; keys work everywhere");
    let password = |target: &str| {
        let script = format!(
            "printf '#!/bin/sh\\necho %s\\n' '{}' > /tmp/askpass && chmod 700 /tmp/askpass && \
             SSH_ASKPASS=/tmp/askpass SSH_ASKPASS_REQUIRE=force setsid ssh -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1 \
             -o ConnectTimeout=5 root@{target} true </dev/null",
            xtask::lab::standin::ROOT_PASSWORD
        );
        lab.driver(&["sh", "-c", &script]).unwrap()
    };
    let from_outside = password(EXTERNAL_VIP);
    assert!(!from_outside.success(), "root logged in with its password over the external network");
    assert!(from_outside.stderr.contains("Permission denied"), "{}", from_outside.stderr);
    let driver_key = xtask::lab::layout::driver_key().display().to_string();
    let key = lab
        .driver(&[
            "ssh",
            "-i",
            &driver_key,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            &format!("root@{EXTERNAL_VIP}"),
            "true",
        ])
        .unwrap();
    assert!(key.success(), "key login over the external network: {}", key.stderr);
    let between_nodes = lab
        .exec(n2, &["ssh", "-o", "BatchMode=yes", "-o", "HostKeyAlias=node1", &ips[0], "uname", "-n"])
        .unwrap();
    assert_eq!(between_nodes.stdout, format!("{n1}\n"), "{}", between_nodes.stderr);

    step("a node leaves: every other node's peers and filter follow within a minute");
    let leaving = [n1, n2, n3].into_iter().find(|n| *n != m && *n != writer).unwrap();
    let leaving_ip = registry_ip(&lab, leaving);
    lab.power_off(leaving).unwrap();
    wait_for(&format!("{m} to see {leaving} gone"), Duration::from_secs(30), || {
        sh(&lab, m, "pvecm status || true").contains("Total votes:      2")
    });
    // Refused (exit 3) until it has been gone for the fence delay + margin.
    wait_for(&format!("the removal of {leaving}"), Duration::from_secs(90), || {
        let out = lab.exec(m, &["dlll_cias-remove-node", "--yes", &leaving.name()]).unwrap();
        assert!(out.success() || out.status == 3, "{}{}", out.stdout, out.stderr);
        out.success()
    });
    for node in [m, writer] {
        wait_for(&format!("{node} to forget {leaving_ip}"), Duration::from_secs(70), || {
            let (set, peers) = trusted(&lab, node);
            !set.contains(&format!("\"{leaving_ip}\"")) && !peers.contains(&leaving_ip)
        });
    }
    assert!(cias_tests::cluster_probe::holds(&lab, m, MASTER_VIP), "the reloads moved no role");
}
