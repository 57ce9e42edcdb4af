//! The stand-in's formats, exit codes and error texts against the reference samples
//! (`shared/reference/proxmox-cli.md`). Each test runs the stand-in inside a throw-away network
//! namespace holding the three lab node addresses, with its own cluster file system directory;
//! membership is written by hand here (the heartbeat service is exercised in the lab).
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;

use cias_tests::netns::Netns;
use serde_json::Value;

struct Cluster {
    ns: Netns,
    dir: tempfile::TempDir,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Cluster {
    fn new(tag: &str) -> Self {
        let ns = Netns::with_links(tag, &["eth0"]).unwrap();
        for ip in ["10.254.1.1/8", "10.254.1.2/8", "10.254.1.3/8"] {
            ns.exec_ok(&["ip", "addr", "add", ip, "dev", "eth0"]).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pve")).unwrap();
        std::fs::create_dir_all(dir.path().join("mfs")).unwrap();
        // The tools under their real names, for commands run "over ssh".
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for tool in ["pvesh", "qm"] {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pve-standin"), bin.join(tool)).unwrap();
        }
        // A stand-in for ssh between the nodes: `root@10.254.1.N CMD` runs CMD through a shell
        // as nodeN, as sshd would (the command words joined with spaces).
        let d = dir.path().display();
        let script = format!(
            "#!/bin/sh\n\
             while [ $# -gt 0 ]; do case \"$1\" in -o) shift 2;; -*) shift;; *) break;; esac; done\n\
             node=node${{1##*.}}; shift\n\
             export PVE_STANDIN_NODE=$node PVE_STANDIN_RUN={d}/run-$node \
             PVE_STANDIN_PIDS={d}/run-$node/qemu-server PATH={d}/bin:$PATH\n\
             exec sh -c \"$*\"\n"
        );
        let ssh = dir.path().join("fake-ssh");
        std::fs::write(&ssh, script).unwrap();
        std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        Self { ns, dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("pve")
    }

    /// Runs `tool args` as node `node`, feeding `stdin`.
    fn run_in(&self, node: &str, stdin: &str, argv: &[&str]) -> Out {
        let run = self.dir.path().join(format!("run-{node}"));
        let mut cmd = vec![
            "env".to_string(),
            format!("PVE_STANDIN_ROOT={}", self.root().display()),
            format!("PVE_STANDIN_RUN={}", run.display()),
            format!("PVE_STANDIN_PIDS={}", run.join("qemu-server").display()),
            format!("PVE_STANDIN_NODE={node}"),
            format!("PVE_STANDIN_SSH={}", self.dir.path().join("fake-ssh").display()),
            env!("CARGO_BIN_EXE_pve-standin").to_string(),
        ];
        cmd.extend(argv.iter().map(|s| s.to_string()));
        let mut args = vec!["netns".to_string(), "exec".to_string(), self.ns.name().to_string()];
        args.extend(cmd);
        let out = duct::cmd("ip", &args)
            .stdin_bytes(stdin.as_bytes().to_vec())
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, node: &str, argv: &[&str]) -> Out {
        self.run_in(node, "", argv)
    }

    fn json(&self, node: &str, argv: &[&str]) -> Value {
        let out = self.run(node, argv);
        assert_eq!(out.code, 0, "{argv:?}: {}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{argv:?}: {e}: {}", out.stdout))
    }

    /// Pretends `node` heard every node in `heard` just now.
    fn hears(&self, node: &str, heard: &[&str]) {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let map: serde_json::Map<String, Value> =
            heard.iter().map(|n| (n.to_string(), Value::from(now))).collect();
        let run = self.dir.path().join(format!("run-{node}"));
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("membership.json"), serde_json::json!({ "heard": map }).to_string()).unwrap();
    }

    /// node1 creates the cluster; node2 and node3 are added to its configuration.
    fn three_nodes(&self) {
        let out = self.run("node1", &["pvecm", "create", "DLLL-CIAS", "--link0", "10.254.1.1"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let file = self.root().join(".standin/cluster.json");
        let mut cluster: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for (i, name) in ["node2", "node3"].iter().enumerate() {
            cluster["nodes"].as_array_mut().unwrap().push(serde_json::json!({"name": name, "nodeid": i + 2, "ip": format!("10.254.1.{}", i + 2), "votes": 1}));
        }
        std::fs::write(&file, cluster.to_string()).unwrap();
        for node in ["node1", "node2", "node3"] {
            self.hears(node, &["node1", "node2", "node3"]);
        }
    }

    fn mfs(&self) -> PathBuf {
        self.dir.path().join("mfs")
    }
}

fn cluster(tag: &str) -> Cluster {
    Cluster::new(tag)
}

fn shape(text: &str) -> Vec<String> {
    text.lines().map(|l| l.split(':').next().unwrap_or_default().to_string()).collect()
}

#[test]
fn a_standalone_node_is_not_a_cluster() {
    let c = cluster("psalone");
    let out = c.run("node1", &["pvecm", "status"]);
    assert_ne!(out.code, 0);
    assert_eq!(
        out.stderr,
        "Error: Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?\n"
    );
    let status = c.json("node1", &["pvesh", "get", "/cluster/status", "--output-format", "json"]);
    assert_eq!(status.as_array().unwrap().len(), 1);
    assert_eq!(status[0]["nodeid"], 0);
    assert_eq!(status[0]["local"], 1);
}

#[test]
fn pvecm_status_matches_the_reference_layout_and_exit_codes() {
    let c = cluster("psstatus");
    c.three_nodes();
    let reference = include_str!("../../../crates/cias-core/testdata/proxmox/pvecm-status-not-quorate.txt");
    // node1 hears only itself: 1 of 3 votes.
    c.hears("node1", &["node1"]);
    let out = c.run("node1", &["pvecm", "status"]);
    assert_eq!(out.code, 2, "not quorate exits 2");
    assert_eq!(shape(&out.stdout)[..21], shape(reference)[..21], "{}", out.stdout);
    assert!(out.stdout.contains("Quorate:          No\n"));
    assert!(out.stdout.contains("Quorum:           2 Activity blocked\n"));
    assert!(out.stdout.contains("0x00000001          1 10.254.1.1 (local)\n"));
    // node2 hears all three.
    let out = c.run("node2", &["pvecm", "status"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("Quorum:           2  \nFlags:            Quorate \n"), "{}", out.stdout);
    let parsed = cias_core::proxmox::pvecm::parse_status(&out.stdout).unwrap();
    assert_eq!((parsed.name.as_str(), parsed.quorate, parsed.members.len()), ("DLLL-CIAS", true, 3));
    let nodes = c.run("node2", &["pvecm", "nodes"]);
    assert!(nodes.stdout.starts_with("\nMembership information\n"), "{}", nodes.stdout);
    assert!(nodes.stdout.contains("         2          1 node2 (local)\n"), "{}", nodes.stdout);
}

#[test]
fn writes_without_quorum_fail_like_pmxcfs() {
    let c = cluster("psquorum");
    c.three_nodes();
    c.hears("node1", &["node1"]);
    for argv in [
        &["pvesm", "add", "dir", "a_mfs", "--path", "/tmp", "--content", "images"][..],
        &["qm", "create", "101", "--memory", "512"][..],
        &["pvesh", "create", "/cluster/backup", "--schedule", "sun 02:00", "--all", "1"][..],
    ] {
        let out = c.run("node1", argv);
        assert_ne!(out.code, 0, "{argv:?}");
        assert_eq!(out.stderr, "cluster not ready - no quorum?\n", "{argv:?}");
    }
    let status = c.json("node1", &["pvesh", "get", "/cluster/status", "--output-format", "json"]);
    assert_eq!(status[0]["quorate"], 0);
    assert_eq!(status[2]["online"], 0);
}

#[test]
fn pvecm_expected_follows_votequorum() {
    let c = cluster("psexpect");
    c.three_nodes();
    let out = c.run("node1", &["pvecm", "expected", "1"]);
    assert_eq!((out.code, out.stderr.as_str()), (1, "Unable to set expected votes: CS_ERR_INVALID_PARAM\n"));
    c.hears("node1", &["node1"]);
    assert_eq!(c.run("node1", &["pvecm", "expected", "1"]).code, 0, "the last node may lower expected votes");
    assert_eq!(c.run("node1", &["pvecm", "status"]).code, 0, "and is quorate again");
}

fn storage_and_vm(c: &Cluster) {
    let mfs = c.mfs();
    let out = c.run(
        "node1",
        &[
            "pvesm",
            "add",
            "dir",
            "a_mfs",
            "--path",
            mfs.to_str().unwrap(),
            "--content",
            "images,backup",
            "--shared",
            "1",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out =
        c.run("node1", &["qm", "create", "101", "--name", "web", "--memory", "2048", "--scsi0", "a_mfs:4"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn vmids_are_unique_cluster_wide_and_configs_local() {
    let c = cluster("psvmid");
    c.three_nodes();
    storage_and_vm(&c);
    let out = c.run("node3", &["qm", "create", "101", "--memory", "512"]);
    assert_eq!(out.stderr, "unable to create VM 101 - VM 101 already exists on node 'node1'\n");
    let out = c.run("node2", &["qm", "config", "101"]);
    assert_eq!(out.stderr, "Configuration file 'nodes/node2/qemu-server/101.conf' does not exist\n");
    let out = c.run("node1", &["qm", "config", "101"]);
    assert_eq!(out.stdout, "memory: 2048\nname: web\nscsi0: a_mfs:101/vm-101-disk-0.raw,size=4G\n");
    let config =
        c.json("node2", &["pvesh", "get", "/nodes/node1/qemu/101/config", "--output-format", "json"]);
    assert_eq!(config["memory"], 2048);
    assert!(config["digest"].is_string());
}

#[test]
fn a_started_vm_writes_heartbeats_and_shows_everywhere() {
    let c = cluster("psvm");
    c.three_nodes();
    storage_and_vm(&c);
    assert_eq!(
        c.run("node2", &["qm", "list"]).stdout,
        "",
        "qm list shows local VMs only, and nothing when there are none"
    );
    let out = c.run("node1", &["qm", "start", "101"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let disk = std::fs::read_to_string(c.mfs().join("images/101/vm-101-disk-0.raw")).unwrap();
    let beats: Vec<&str> = disk.lines().filter(|l| l.starts_with("HB 101 node1 ")).collect();
    assert!(beats.len() >= 2, "{disk}");
    let list = c.run("node1", &["qm", "list"]).stdout;
    let reference = include_str!("../../../crates/cias-core/testdata/proxmox/qm-list.txt");
    assert_eq!(list.lines().next(), reference.lines().next(), "same header");
    assert!(
        list.lines()
            .nth(1)
            .unwrap()
            .starts_with("       101 web                  running    2048               4.00 "),
        "{list}"
    );
    let vms = cias_core::proxmox::qm::parse_list(&list).unwrap();
    assert_eq!(vms[0].status, "running");
    // node1 publishes its state through the heartbeat service; do it by hand here.
    let running = serde_json::json!({"time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64, "running": [101]});
    std::fs::create_dir_all(c.root().join(".standin/status")).unwrap();
    std::fs::write(c.root().join(".standin/status/node1.json"), running.to_string()).unwrap();
    let resources =
        c.json("node3", &["pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json"]);
    assert_eq!(resources[0]["status"], "running");
    assert_eq!(resources[0]["node"], "node1");
    assert_eq!(resources[0]["maxmem"], 2048u64 << 20);
    let parsed: Vec<cias_core::proxmox::pvesh::VmResource> = serde_json::from_value(resources).unwrap();
    assert_eq!(parsed[0].vmid, 101);
    let out = c.run("node1", &["qm", "stop", "101"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(c.run("node1", &["qm", "list"]).stdout.contains(" stopped "));
}

#[test]
fn migration_errors_are_the_real_ones() {
    let c = cluster("psmig");
    c.three_nodes();
    storage_and_vm(&c);
    let err = |argv: &[&str]| c.run("node1", argv).stderr;
    assert_eq!(err(&["qm", "migrate", "101", "node1"]), "target is local node.\n");
    assert_eq!(err(&["qm", "migrate", "101", "node9"]), "no such cluster node 'node9'\n");
    c.run("node1", &["qm", "start", "101"]);
    assert_eq!(err(&["qm", "migrate", "101", "node2"]), "can't migrate running VM without --online\n");
    c.run("node1", &["qm", "stop", "101"]);
    let out = c.run("node1", &["qm", "migrate", "101", "node2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("starting migration of VM 101 to node 'node2' (10.254.1.2)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with("TASK OK\n"), "{}", out.stdout);
    assert!(c.root().join("nodes/node2/qemu-server/101.conf").exists());
}

#[test]
fn vzdump_and_qmrestore() {
    let c = cluster("psdump");
    c.three_nodes();
    storage_and_vm(&c);
    std::fs::write(c.mfs().join("images/101/vm-101-disk-0.raw"), "HB 101 node1 1 1\n").unwrap();
    // On a node that does not own the VM: exit 0, nothing written.
    let out =
        c.run("node2", &["vzdump", "101", "--storage", "a_mfs", "--mode", "snapshot", "--compress", "gzip"]);
    assert_eq!(out.code, 0);
    assert!(!c.mfs().join("dump").exists());
    let out =
        c.run("node1", &["vzdump", "101", "--storage", "a_mfs", "--mode", "snapshot", "--compress", "gzip"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let archive = std::fs::read_dir(c.mfs().join("dump"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "gz"))
        .unwrap();
    let name = archive.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("vzdump-qemu-101-")
            && name.ends_with(".vma.gz")
            && name.len() == "vzdump-qemu-101-2024_06_01-02_00_03.vma.gz".len(),
        "{name}"
    );
    assert!(
        out.stderr.contains(&format!("INFO: creating vzdump archive '{}'", archive.display())),
        "{}",
        out.stderr
    );
    let out = c.run("node3", &["qmrestore", archive.to_str().unwrap(), "101"]);
    assert_eq!(out.stderr, "unable to restore VM 101 - VM 101 already exists on node 'node1'\n");
    let out = c.run("node3", &["qmrestore", archive.to_str().unwrap(), "102", "--storage", "a_mfs"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(c.mfs().join("images/102/vm-102-disk-0.raw")).unwrap(),
        "HB 101 node1 1 1\n"
    );
    assert!(c
        .run("node3", &["qm", "config", "102"])
        .stdout
        .contains("scsi0: a_mfs:102/vm-102-disk-0.raw,size=4G"));
}

#[test]
fn backup_jobs_are_stored_as_in_jobs_cfg() {
    let c = cluster("psjobs");
    c.three_nodes();
    let out = c.run(
        "node1",
        &[
            "pvesh",
            "create",
            "/cluster/backup",
            "--id",
            "weekly",
            "--schedule",
            "sun 02:00",
            "--storage",
            "a_mfs",
            "--all",
            "1",
            "--mode",
            "snapshot",
            "--compress",
            "zstd",
            "--prune-backups",
            "keep-last=4",
        ],
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
    let text = std::fs::read_to_string(c.root().join("jobs.cfg")).unwrap();
    assert_eq!(text, "vzdump: weekly\n\tschedule sun 02:00\n\tall 1\n\tcompress zstd\n\tenabled 1\n\tmode snapshot\n\tprune-backups keep-last=4\n\tstorage a_mfs\n\n");
    let jobs = c.json("node2", &["pvesh", "get", "/cluster/backup", "--output-format", "json"]);
    assert_eq!(jobs[0]["id"], "weekly");
    assert_eq!(jobs[0]["all"], 1);
    assert_eq!(jobs[0]["prune-backups"]["keep-last"], "4");
}

#[test]
fn pvesh_json_is_one_sorted_line_and_pretty_uses_three_spaces() {
    let c = cluster("psjson");
    c.three_nodes();
    let out = c.run("node1", &["pvesh", "get", "/cluster/status", "--output-format", "json"]);
    assert_eq!(out.stdout.lines().count(), 1);
    assert!(out.stdout.starts_with("[{\"id\":\"cluster\",\"name\":\"DLLL-CIAS\",\"nodes\":3,\"quorate\":1,\"type\":\"cluster\",\"version\":1}"), "{}", out.stdout);
    let pretty =
        c.run("node1", &["pvesh", "get", "/cluster/status", "--output-format", "json-pretty"]).stdout;
    assert!(
        pretty.starts_with("[\n   {\n      \"id\" : \"cluster\"")
            || pretty.starts_with("[\n   {\n      \"id\": \"cluster\""),
        "{pretty}"
    );
}

#[test]
fn storage_add_errors() {
    let c = cluster("psstore");
    c.three_nodes();
    let out = c.run(
        "node1",
        &[
            "pvesm",
            "add",
            "dir",
            "a_mfs",
            "--path",
            c.mfs().to_str().unwrap(),
            "--content",
            "images",
            "--is_mountpoint",
            "yes",
        ],
    );
    assert_eq!(out.stderr, format!("create storage failed: unable to activate storage 'a_mfs' - directory is expected to be a mount point but is not mounted: '{}'\n", c.mfs().display()));
    storage_and_vm(&c);
    let out = c.run("node1", &["pvesm", "add", "dir", "a_mfs", "--path", "/tmp", "--content", "images"]);
    assert_eq!(out.stderr, "create storage failed: storage ID 'a_mfs' already defined\n");
}

#[test]
fn pvecm_delnode_and_updatecerts() {
    let c = cluster("psdel");
    c.three_nodes();
    assert_eq!(c.run("node1", &["pvecm", "delnode", "node1"]).stderr, "Cannot delete myself from cluster!\n");
    assert_eq!(
        c.run("node1", &["pvecm", "delnode", "node9"]).stderr,
        "Node/IP: node9 is not a known host of the cluster.\n"
    );
    assert_eq!(c.run("node1", &["pvecm", "updatecerts"]).code, 0);
    std::fs::create_dir_all(c.root().join("nodes/node3/qemu-server")).unwrap();
    c.hears("node1", &["node1", "node2"]);
    let out = c.run("node1", &["pvecm", "delnode", "10.254.1.3"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "Killing node 3\n");
    assert!(c.root().join("nodes/node3").exists(), "the node's directory stays, as in Proxmox");
    let status = c.json("node1", &["pvesh", "get", "/cluster/status", "--output-format", "json"]);
    assert_eq!(status[0]["nodes"], 2);
    c.hears("node1", &["node1"]);
    let out = c.run("node1", &["pvecm", "updatecerts"]);
    assert!(out.stderr.contains("no quorum (yet) or hung pmxcfs?"), "{}", out.stderr);
}

#[test]
fn joins_check_first_and_exit_0_even_when_the_join_fails() {
    let c = cluster("psjoin");
    c.three_nodes();
    let out = c.run_in("node2", "pw\n", &["pvecm", "add", "10.254.1.1", "--fingerprint", "AA"]);
    assert_eq!(out.code, 255);
    assert_eq!(out.stderr, "* cluster config '/etc/pve/corosync.conf' already exists\nCheck if node may join a cluster failed!\n");
    c.ns.exec_ok(&["ip", "addr", "add", "10.254.1.4/8", "dev", "eth0"]).unwrap();
    // Nothing answers at 10.254.1.1 (no membership service runs here): the join fails, exit 0.
    let out = c.run_in(
        "node4",
        "pw\n",
        &["pvecm", "add", "10.254.1.1", "--fingerprint", "AA", "--link0", "10.254.1.4"],
    );
    assert_eq!(out.code, 0);
    assert_eq!(out.stderr, "500 Can't connect to 10.254.1.1:8006 (Connection refused)\n");
    assert!(!out.stdout.contains("successfully added"));
    let out = c.run_in("node4", "pw\n", &["pvecm", "add", "10.254.1.1", "--link0", "10.9.9.9"]);
    assert!(out.stderr.contains("* cannot use IP '10.9.9.9', not found on local node!"), "{}", out.stderr);
    // The API variant prints a UPID; the task records the failure.
    let out = c.run(
        "node4",
        &[
            "pvesh",
            "create",
            "/cluster/config/join",
            "--hostname",
            "10.254.1.1",
            "--fingerprint",
            "AA",
            "--password",
            "pw",
            "--link0",
            "10.254.1.4",
            "--output-format",
            "json",
        ],
    );
    assert_eq!(out.code, 0);
    let upid: String = serde_json::from_str(&out.stdout).unwrap();
    let task = c.json(
        "node4",
        &["pvesh", "get", &format!("/nodes/node4/tasks/{upid}/status"), "--output-format", "json"],
    );
    assert_eq!(task["exitstatus"], "500 Can't connect to 10.254.1.1:8006 (Connection refused)");
}

#[test]
fn join_info_node_status_and_storage() {
    let c = cluster("psinfo");
    c.three_nodes();
    storage_and_vm(&c);
    let join = c.json("node2", &["pvesh", "get", "/cluster/config/join", "--output-format", "json"]);
    let nodes = c.json("node2", &["pvesh", "get", "/nodes", "--output-format", "json"]);
    assert_eq!(join["nodelist"][0]["pve_fp"], nodes[0]["ssl_fingerprint"]);
    assert_eq!(join["nodelist"][0]["ring0_addr"], "10.254.1.1");
    assert_eq!(join["totem"]["cluster_name"], "DLLL-CIAS");
    let status = c.json("node2", &["pvesh", "get", "/nodes/node1/status", "--output-format", "json"]);
    assert!(status["loadavg"][0].is_string(), "loadavg holds strings: {status}");
    assert!(status["memory"]["total"].as_u64().unwrap() > status["memory"]["used"].as_u64().unwrap());
    let storage = c.json("node2", &["pvesh", "get", "/nodes/node2/storage", "--output-format", "json"]);
    let a_mfs = storage.as_array().unwrap().iter().find(|s| s["storage"] == "a_mfs").unwrap();
    assert_eq!(
        (a_mfs["shared"].clone(), a_mfs["active"].clone(), a_mfs["type"].clone()),
        (1.into(), 1.into(), "dir".into())
    );
    c.hears("node2", &["node1", "node2"]);
    let out = c.run("node2", &["pvesh", "get", "/nodes/node3/status", "--output-format", "json"]);
    assert_eq!(
        out.stderr,
        "proxy handler failed: ssh: connect to host 10.254.1.3 port 22: No route to host\n"
    );
    let nodes = c.json("node2", &["pvesh", "get", "/nodes", "--output-format", "json"]);
    assert_eq!(nodes[2]["status"], "offline");
    assert!(nodes[2].get("mem").is_none(), "offline nodes have no runtime fields");
}

#[test]
fn qm_set_lock_unlock_and_shutdown() {
    let c = cluster("psqmset");
    c.three_nodes();
    storage_and_vm(&c);
    assert_eq!(
        c.run("node1", &["qm", "set", "101", "--onboot", "1", "--lock", "backup", "--delete", "name"]).code,
        0
    );
    let config = c.run("node1", &["qm", "config", "101"]).stdout;
    assert!(
        config.contains("onboot: 1\n") && config.contains("lock: backup\n") && !config.contains("name:"),
        "{config}"
    );
    assert_eq!(c.run("node1", &["qm", "start", "101"]).stderr, "VM is locked (backup)\n");
    assert_eq!(c.run("node1", &["qm", "unlock", "101"]).code, 0);
    assert_eq!(c.run("node1", &["qm", "start", "101"]).code, 0);
    assert!(c.run("node1", &["qm", "list"]).stdout.contains(" running "));
    assert_eq!(c.run("node1", &["qm", "shutdown", "101"]).code, 0);
    assert!(c.run("node1", &["qm", "list"]).stdout.contains(" stopped "));
}

#[test]
fn migrateall_is_a_background_task_with_a_status() {
    let c = cluster("psmigall");
    c.three_nodes();
    storage_and_vm(&c);
    assert_eq!(c.run("node1", &["qm", "create", "102", "--memory", "512", "--scsi0", "a_mfs:1"]).code, 0);
    let out = c.run("node1", &["pvesh", "create", "/nodes/node1/migrateall", "--target", "node2"]);
    assert_eq!(out.stderr, "either 'max-workers' parameter or max_workers in datacenter.cfg must be set!\n");
    let out = c.run(
        "node1",
        &[
            "pvesh",
            "create",
            "/nodes/node1/migrateall",
            "--target",
            "node2",
            "--max-workers",
            "2",
            "--output-format",
            "json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let upid: String = serde_json::from_str(&out.stdout).unwrap();
    let parsed = cias_core::proxmox::task::Upid::parse(&upid).unwrap();
    assert_eq!((parsed.node.as_str(), parsed.kind.as_str()), ("node1", "migrateall"));
    let start = std::time::Instant::now();
    let status = loop {
        let s: cias_core::proxmox::task::TaskStatus = serde_json::from_value(c.json(
            "node1",
            &["pvesh", "get", &format!("/nodes/node1/tasks/{upid}/status"), "--output-format", "json"],
        ))
        .unwrap();
        if s.finished() {
            break s;
        }
        assert!(start.elapsed().as_secs() < 20, "migrateall did not finish");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(status.succeeded(), "{status:?}");
    assert!(c.root().join("nodes/node2/qemu-server/101.conf").exists());
    assert!(c.root().join("nodes/node2/qemu-server/102.conf").exists());
}

#[test]
fn pvesm_status_remove_and_nfs() {
    let c = cluster("pssm");
    c.three_nodes();
    storage_and_vm(&c);
    let status = c.run("node1", &["pvesm", "status"]).stdout;
    let header: Vec<&str> = status.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["Name", "Type", "Status", "Total", "(KiB)", "Used", "(KiB)", "Available", "(KiB)", "%"]
    );
    assert!(status.lines().any(|l| l.starts_with("a_mfs") && l.contains(" active ")), "{status}");
    let nfs = [
        "pvesm",
        "add",
        "nfs",
        "nas.master-rack.a.1-1.example.com",
        "--server",
        // Loopback, where no NFS server (no rpcbind) answers: the lab tests add a real one.
        "127.0.0.1",
        "--export",
        "/export",
        "--content",
        "images,backup",
    ];
    let refused = c.run("node1", &nfs);
    assert_eq!(
        (refused.code, refused.stderr.as_str()),
        (255, "create storage failed: storage 'nas.master-rack.a.1-1.example.com' is not online\n")
    );
    let storage_cfg = std::fs::read_to_string(c.root().join("storage.cfg")).unwrap();
    assert!(!storage_cfg.contains("nfs:"), "{storage_cfg}");
    let scan = c.run("node1", &["pvesm", "scan", "nfs", "127.0.0.1"]);
    assert_eq!(scan.code, 255);
    assert!(
        scan.stderr
            .contains("command '/sbin/showmount --no-headers --exports 127.0.0.1' failed: exit code 1"),
        "{}",
        scan.stderr
    );
    assert_eq!(c.run("node1", &["pvesm", "remove", "a_mfs"]).code, 0);
    assert_eq!(
        c.run("node1", &["pvesm", "remove", "a_mfs"]).stderr,
        "delete storage failed: storage 'a_mfs' does not exist\n"
    );
}

#[test]
fn pveversion_and_yaml_output() {
    let c = cluster("psver");
    c.three_nodes();
    assert!(c.run("node1", &["pveversion"]).stdout.starts_with("pve-manager/8."));
    let yaml = c.run("node1", &["pvesh", "get", "/cluster/status", "--output-format", "yaml"]).stdout;
    let parsed: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(parsed[0]["name"], "DLLL-CIAS");
    let out = c.run("node1", &["pvesh", "get", "/cluster/status", "--output-format", "xml"]);
    assert!(out.stderr.starts_with("400 Parameter verification failed.\noutput-format: "), "{}", out.stderr);
}

/// The task status of `upid`, asked on `node`.
fn task_status(c: &Cluster, node: &str, upid: &str) -> Value {
    let parsed = cias_core::proxmox::task::Upid::parse(upid).unwrap();
    c.json(
        node,
        &["pvesh", "get", &format!("/nodes/{}/tasks/{upid}/status", parsed.node), "--output-format", "json"],
    )
}

/// The UPID a `pvesh create` printed as its last line (a task's log comes before it).
fn printed_upid(out: &Out) -> String {
    let last = out.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

#[test]
fn api_vm_start_stop_and_migrate_are_tasks() {
    let c = cluster("psapivm");
    c.three_nodes();
    storage_and_vm(&c);
    let create = |node: &str, path: &str, extra: &[&str]| {
        let mut argv = vec!["pvesh", "create", path, "--output-format", "json"];
        argv.extend(extra);
        c.run(node, &argv)
    };
    // Start: nothing but the UPID on stdout; the task status tells the outcome.
    let out = create("node1", "/nodes/node1/qemu/101/status/start", &[]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    let upid = printed_upid(&out);
    let parsed = cias_core::proxmox::task::Upid::parse(&upid).unwrap();
    assert_eq!((parsed.node.as_str(), parsed.kind.as_str(), parsed.id.as_str()), ("node1", "qmstart", "101"));
    let status = task_status(&c, "node1", &upid);
    assert_eq!((status["status"].clone(), status["exitstatus"].clone()), ("stopped".into(), "OK".into()));
    assert_eq!(status["type"], "qmstart");
    assert!(c.run("node1", &["qm", "list"]).stdout.contains(" running "));
    // A failing task: the call still prints the UPID and exits 0, the error goes to stderr.
    let out = create("node1", "/nodes/node1/qemu/101/status/start", &[]);
    assert_eq!((out.code, out.stderr.as_str()), (0, "VM 101 already running\n"));
    assert_eq!(task_status(&c, "node1", &printed_upid(&out))["exitstatus"], "VM 101 already running");
    // Stop.
    let out = create("node1", "/nodes/node1/qemu/101/status/stop", &[]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{}", out.stdout);
    let status = task_status(&c, "node1", &printed_upid(&out));
    assert_eq!((status["type"].clone(), status["exitstatus"].clone()), ("qmstop".into(), "OK".into()));
    assert!(c.run("node1", &["qm", "list"]).stdout.contains(" stopped "));
    // A VM whose config is on another node: start/stop fail in the task, migrate before it.
    assert_eq!(c.run("node2", &["qm", "create", "102", "--memory", "512", "--scsi0", "a_mfs:1"]).code, 0);
    let missing = "Configuration file 'nodes/node1/qemu-server/102.conf' does not exist";
    for action in ["start", "stop"] {
        let out = create("node1", &format!("/nodes/node1/qemu/102/status/{action}"), &[]);
        assert_eq!((out.code, out.stderr.clone()), (0, format!("{missing}\n")), "{action}");
        assert_eq!(task_status(&c, "node1", &printed_upid(&out))["exitstatus"], missing);
    }
    let out = create("node1", "/nodes/node1/qemu/102/migrate", &["--target", "node3"]);
    assert_eq!((out.code, out.stderr.clone(), out.stdout.as_str()), (255, format!("{missing}\n"), ""));
    let out = create("node1", "/nodes/node1/qemu/101/migrate", &[]);
    assert_eq!(
        out.stderr,
        "400 Parameter verification failed.\ntarget: property is missing and it is not optional\n"
    );
    // Online migration of a running VM: the task log, then the UPID; the VM runs on the target.
    std::fs::write(c.root().join(".standin/settings.json"), r#"{"migrate_secs_per_gib": 0}"#).unwrap();
    assert_eq!(create("node1", "/nodes/node1/qemu/101/status/start", &[]).code, 0);
    let out = create("node1", "/nodes/node1/qemu/101/migrate", &["--target", "node2"]);
    assert_eq!(out.stderr, "can't migrate running VM without --online\n");
    let out = create("node1", "/nodes/node1/qemu/101/migrate", &["--target", "node2", "--online", "1"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{}", out.stdout);
    assert!(
        out.stdout.contains("starting migration of VM 101 to node 'node2' (10.254.1.2)\n"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("TASK OK"), "pvesh does not print TASK OK: {}", out.stdout);
    let status = task_status(&c, "node1", &printed_upid(&out));
    assert_eq!((status["type"].clone(), status["exitstatus"].clone()), ("qmigrate".into(), "OK".into()));
    assert!(c.root().join("nodes/node2/qemu-server/101.conf").exists());
    assert!(c.run("node2", &["qm", "list"]).stdout.contains(" running "));
    assert_eq!(c.run("node2", &["qm", "stop", "101"]).code, 0);
}

#[test]
fn calls_on_other_nodes_are_run_there_over_ssh() {
    let c = cluster("psproxy");
    c.three_nodes();
    storage_and_vm(&c);
    // node2 starts node1's VM: pvesh runs the call on node1 and prints its result.
    let out =
        c.run("node2", &["pvesh", "create", "/nodes/node1/qemu/101/status/start", "--output-format", "json"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{}", out.stdout);
    let upid = printed_upid(&out);
    assert_eq!(cias_core::proxmox::task::Upid::parse(&upid).unwrap().node, "node1");
    assert_eq!(task_status(&c, "node2", &upid)["exitstatus"], "OK");
    assert!(c.run("node1", &["qm", "list"]).stdout.contains(" running "));
    assert!(c.run("node2", &["qm", "list"]).stdout.is_empty());
    // The text format is this call's own.
    let out = c.run("node3", &["pvesh", "create", "/nodes/node1/qemu/101/status/stop"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("UPID:node1:"), "{}", out.stdout);
    assert!(c.run("node1", &["qm", "list"]).stdout.contains(" stopped "));
    // A task failing over there: its message on stderr, exit 0.
    let out =
        c.run("node2", &["pvesh", "create", "/nodes/node1/qemu/102/status/start", "--output-format", "json"]);
    assert_eq!(out.code, 0);
    assert_eq!(out.stderr, "Configuration file 'nodes/node1/qemu-server/102.conf' does not exist\n");
    // A call failing over there: its last stderr line as the proxy's error, exit 255.
    let out = c.run("node2", &["pvesh", "create", "/nodes/node1/qemu/101/migrate", "--target", "node1"]);
    assert_eq!((out.code, out.stderr.as_str()), (255, "proxy handler failed: target is local node.\n"));
    let out = c.run("node2", &["pvesh", "create", "/nodes/node1/migrateall", "--target", "node3"]);
    assert_eq!(
        out.stderr,
        "proxy handler failed: either 'max-workers' parameter or max_workers in datacenter.cfg must be set!\n"
    );
    // Options with spaces survive the remote shell.
    let out =
        c.run("node2", &["pvesh", "set", "/nodes/node1/qemu/101/config", "--description", "it's a 'web' VM"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(c.run("node1", &["qm", "config", "101"]).stdout.contains("description: it's a 'web' VM\n"));
    // A migration's task log comes before the UPID on the remote stdout, which pvesh then
    // cannot decode: the migration happened, the call fails (read in pvesh.pm; not observed).
    let out = c.run("node2", &["pvesh", "create", "/nodes/node1/qemu/101/migrate", "--target", "node3"]);
    assert_eq!(out.code, 255);
    assert!(out.stderr.starts_with("malformed JSON string, neither tag, array, object, number, string or atom, at character offset 0 (before \""), "{}", out.stderr);
    assert!(c.root().join("nodes/node3/qemu-server/101.conf").exists());
    // migrateall for another node runs there.
    let out = c.run(
        "node1",
        &[
            "pvesh",
            "create",
            "/nodes/node3/migrateall",
            "--target",
            "node1",
            "--max-workers",
            "1",
            "--output-format",
            "json",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let upid = printed_upid(&out);
    assert_eq!(cias_core::proxmox::task::Upid::parse(&upid).unwrap().node, "node3");
    let start = std::time::Instant::now();
    while task_status(&c, "node1", &upid)["status"] != "stopped" {
        assert!(start.elapsed().as_secs() < 20, "migrateall did not finish");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(c.root().join("nodes/node1/qemu-server/101.conf").exists());
    // Not proxied: unknown nodes, --noproxy, offline members.
    let out = c.run("node1", &["pvesh", "get", "/nodes/node9/status"]);
    assert_eq!(
        out.stderr,
        "hostname lookup 'node9' failed - failed to get address info for: node9: Name or service not known\n"
    );
    let out = c.run("node1", &["pvesh", "--noproxy", "get", "/nodes/node2/status"]);
    assert_eq!(out.stderr, "proxy loop detected - aborting\n");
    c.hears("node1", &["node1", "node2"]);
    let out = c.run("node1", &["pvesh", "create", "/nodes/node3/qemu/101/status/start"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (255, "proxy handler failed: ssh: connect to host 10.254.1.3 port 22: No route to host\n")
    );
}
