//! The toolkit's Debian package on plain nodes (issue 15, "Done when"): a 2-node lab whose nodes
//! have the Proxmox stand-in but neither our binaries nor the packages ours depends on
//! (keepalived, MooseFS, ...). On node1, the package installed with `dpkg -i` alone stays
//! unconfigured and setup's preflight names every missing dependency and changes nothing; on
//! node2 `apt-get install ./dlll-cias_*.deb`, on node1 `apt-get --fix-broken install`, pull the
//! dependencies from the lab's package cache (the nodes have no other source and no route
//! out); the man pages and completions are in place, and `dlll_cias-setup` from the package
//! installs the cluster.

#![allow(clippy::print_stderr)]

use std::collections::BTreeSet;
use std::time::Duration;

use cias_core::installed::PACKAGES;
use cias_tests::cluster_probe::{holders, run_cron_job, sh, stepper, wait_for, Down, MASTER_VIP};
use xtask::demo::{self, BINARIES};
use xtask::lab::rootfs::PACKAGES_NODE_PATH;
use xtask::lab::{ExtraFile, Lab, LabConfig, Node};

/// `dpkg-query`'s status of each of `packages` on `node` (`ii` installed; absent: not known).
fn package_states(lab: &Lab, node: Node, packages: &[&str]) -> Vec<(String, String)> {
    let out = lab
        .exec(node, &[&["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\\n"], packages].concat())
        .unwrap();
    out.stdout
        .lines()
        .filter_map(|l| {
            let (name, state) = l.split_once(' ')?;
            Some((name.to_string(), state.trim().to_string()))
        })
        .collect()
}

fn installed(lab: &Lab, node: Node, packages: &[&str]) -> BTreeSet<String> {
    package_states(lab, node, packages).into_iter().filter(|(_, s)| s == "ii").map(|(n, _)| n).collect()
}

/// Files changed since `marker` where setup writes (but /etc/pve, which the stand-in keeps
/// writing), and whether setup's management directory exists.
fn changed_since(lab: &Lab, node: Node, marker: &str) -> String {
    sh(
        lab,
        node,
        &format!(
            "find /etc /root/.ssh /mnt /var/lib -xdev -newer {marker} -not -path '/etc/pve/*' \
             -not -path '/var/lib/systemd/*' -not -path '/var/lib/private/*' 2>/dev/null | sort; \
             test -e /data/cias && echo /data/cias exists; true"
        ),
    )
}

#[test]
fn the_package_pulls_its_dependencies_from_the_lab_cache_and_installs_the_cluster() {
    let step = stepper();
    step("cargo xtask dist --check (the debug build the other tests use)");
    let deb = xtask::dist::run(true).unwrap();
    let deb_name = deb.file_name().unwrap().to_string_lossy().into_owned();
    let in_node = format!("/root/{deb_name}");

    step("a plain 2-node lab: Proxmox stand-in, no toolkit, none of its dependencies");
    let lab = Lab::up(&LabConfig { nodes: 2, toolkit_deps: false, ..LabConfig::default() }).unwrap();
    let _down = Down;
    let (n1, n2) = (Node::new(1).unwrap(), Node::new(2).unwrap());
    for n in [n1, n2] {
        assert_eq!(installed(&lab, n, PACKAGES), BTreeSet::new(), "{n} has some dependencies already");
        sh(
            &lab,
            n,
            "test -x /usr/bin/pvecm && test -x /usr/bin/qmrestore && ! ls /usr/sbin/dlll_cias-* 2>/dev/null",
        );
    }
    lab.install(&ExtraFile { source: deb.clone(), dest: in_node.clone(), mode: 0o644 }).unwrap();

    step("node1: dpkg -i alone leaves it unconfigured; preflight lists each missing package");
    let out = lab.exec(n1, &["dpkg", "-i", &in_node]).unwrap();
    assert!(!out.success() && out.stderr.contains("dependency problems"), "{}\n{}", out.stdout, out.stderr);
    sh(&lab, n1, "test -x /usr/sbin/dlll_cias-setup");
    demo::prepare_first(&lab, n1).unwrap();
    sh(&lab, n1, "sleep 1; touch /tmp/before-setup; sleep 1");
    let out = demo::setup(&lab, n1, &[]).unwrap();
    assert_eq!(out.status, 2, "preflight refuses:\n{}\n{}", out.stdout, out.stderr);
    let listed: BTreeSet<&str> = out
        .stderr
        .split("missing packages: ")
        .nth(1)
        .and_then(|rest| rest.split(" - ").next())
        .unwrap_or_else(|| panic!("no list of missing packages in:\n{}", out.stderr))
        .split(", ")
        .collect();
    assert_eq!(listed, PACKAGES.iter().copied().collect(), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was changed"), "{}", out.stderr);
    assert_eq!(changed_since(&lab, n1, "/tmp/before-setup"), "", "preflight changed nothing");

    step("from the lab's package cache: node2 apt-get install ./dlll-cias_*.deb, node1 apt-get --fix-broken install");
    // node1's is what apt asks for after `dpkg -i` left the package unconfigured.
    for (n, install) in [
        (n2, format!("apt-get install --yes -q ./{deb_name}")),
        (n1, "apt-get --fix-broken install --yes -q".to_string()),
    ] {
        let install = format!("cd /root && DEBIAN_FRONTEND=noninteractive {install}");
        let out = lab.exec(n, &["bash", "-c", &install]).unwrap();
        assert!(out.success(), "{n}: apt-get install failed:\n{}\n{}", out.stdout, out.stderr);
        let mut wanted: Vec<&str> = PACKAGES.to_vec();
        wanted.push("dlll-cias");
        let all: BTreeSet<String> = wanted.iter().map(|p| p.to_string()).collect();
        assert_eq!(installed(&lab, n, &wanted), all, "{n}: every dependency installed");
        let policy = sh(&lab, n, "apt-cache policy keepalived moosefs-master");
        assert!(policy.contains(&format!("file:{PACKAGES_NODE_PATH}")), "{n}: from the cache:\n{policy}");
        for b in BINARIES {
            let owner = sh(&lab, n, &format!("dpkg -S /usr/sbin/{b} /usr/share/man/man8/{b}.8.gz"));
            assert_eq!(owner.matches("dlll-cias: ").count(), 2, "{n}: {b} from the package:\n{owner}");
            sh(&lab, n, &format!("test -s /usr/share/bash-completion/completions/{b}"));
        }
        let page = sh(&lab, n, "man -P cat dlll_cias-setup 2>/dev/null");
        assert!(page.contains("SYNOPSIS") && page.contains("--answers"), "{n}: man dlll_cias-setup:\n{page}");
    }

    step("dlll_cias-setup from the package installs the cluster");
    demo::setup_all(&lab).unwrap();
    assert_eq!(holders(&lab, MASTER_VIP), vec![n1], "node1 is the master");
    sh(&lab, n2, "echo from-node2 > /mnt/mfs/package-lab.txt && sync");
    wait_for("node2's file on node1's /mnt/mfs", Duration::from_secs(10), || {
        lab.sh(n1, "cat /mnt/mfs/package-lab.txt").map(|t| t.trim() == "from-node2").unwrap_or(false)
    });
    run_cron_job(&lab, n1, "dlll_cias-watch vmids");
    let out = sh(&lab, n2, "dlll_cias-status --json; echo \"exit=$?\"");
    let (json, code) = out.rsplit_once("exit=").unwrap_or_else(|| panic!("no exit status in {out}"));
    let status: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert_eq!((code.trim(), status["health"].as_str()), ("0", Some("healthy")), "{status:#}");
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(2), "{status:#}");
    step("done");
}
