//! `pvecm`: create, add, status, nodes, expected, delnode, updatecerts.

use std::io::BufRead;
use std::process::Command;

use crate::args::{param_error, Args};
use crate::cluster::{ClusterConfig, ClusterNode, Env, QDevice};
use crate::{heartbeat, qnetd, Failure, Result};

const NOT_CLUSTERED: &str =
    "Error: Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?";

pub fn main(env: &Env, raw: &[String]) -> Result<u8> {
    let args = Args::parse(raw)?;
    match args.positional.first().map(String::as_str) {
        Some("create") => create(env, &args),
        Some("add") => add(env, &args),
        Some("status") => status(env),
        Some("nodes") => nodes(env),
        Some("expected") => expected(env, &args),
        Some("delnode") => delnode(env, &args),
        Some("qdevice") => match args.positional.get(1).map(String::as_str) {
            Some("setup") => qdevice_setup(env, &args),
            Some("remove") => qdevice_remove(env),
            _ => Err(Failure::with_code("USAGE: pvecm qdevice <COMMAND> [ARGS] [OPTIONS]", 255)),
        },
        Some("updatecerts") => {
            env.fingerprint(&env.node)?;
            if env.my_cluster()?.is_some() && !env.quorum()?.quorate() {
                return Err(Failure::die("got timeout when trying to ensure cluster certificates and base file hierarchy is set up - no quorum (yet) or hung pmxcfs?"));
            }
            Ok(0)
        }
        _ => Err(Failure::with_code("USAGE: pvecm <COMMAND> [ARGS] [OPTIONS]", 255)),
    }
}

/// The node's address on the LAN: `--link0`, else its first global IPv4 address.
fn local_address(link0: Option<&str>) -> Result<String> {
    let out = Command::new("ip").args(["-o", "-4", "addr", "show", "scope", "global"]).output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let addresses: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
        .filter_map(|cidr| cidr.split('/').next().map(str::to_string))
        .collect();
    match link0 {
        Some(ip) if addresses.iter().any(|a| a == ip) => Ok(ip.to_string()),
        Some(ip) => Err(Failure::die(format!("cannot use IP '{ip}', not found on local node!"))),
        None => addresses.into_iter().next().ok_or_else(|| Failure::die("unable to get local IP address")),
    }
}

fn create(env: &Env, args: &Args) -> Result<u8> {
    let name = args.pos(1, "clustername")?;
    if name.len() > 15 || name.is_empty() {
        return Err(param_error("clustername", "value may only be 15 characters long"));
    }
    if env.my_cluster()?.is_some() || env.cluster()?.is_some() {
        return Err(Failure::die("cluster config '/etc/pve/corosync.conf' already exists"));
    }
    let ip = local_address(args.opt("link0"))?;
    let nodeid = args.opt("nodeid").and_then(|n| n.parse().ok()).unwrap_or(1);
    let votes = args.opt("votes").and_then(|n| n.parse().ok()).unwrap_or(1);
    env.fingerprint(&env.node)?;
    println!("Writing corosync config to /etc/pve/corosync.conf");
    env.save_cluster(&ClusterConfig {
        name: name.to_string(),
        config_version: 1,
        nodes: vec![ClusterNode { name: env.node.clone(), nodeid, ip, votes }],
        qdevice: None,
    })?;
    println!("Restart corosync and cluster filesystem");
    Ok(0)
}

/// `pvecm add IP --fingerprint FP [--link0 IP] [--force]`, password on stdin. Like the real
/// one it exits 0 when the join itself fails: success is the line `successfully added node`.
/// (The stand-in reads the password but cannot check it against the remote node.)
fn add(env: &Env, args: &Args) -> Result<u8> {
    let target_ip = args.pos(1, "hostname")?.to_string();
    let my_ip = assert_joinable(env, args)?;
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    if password.trim().is_empty() {
        return Err(Failure::die("no password given"));
    }
    if let Err(message) = join(env, &target_ip, args.opt("fingerprint"), my_ip, args) {
        eprintln!("{message}");
        return Ok(0);
    }
    print!("waiting for quorum...");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !env.quorum()?.quorate() {
        if std::time::Instant::now() > deadline {
            println!("timeout");
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    println!("OK");
    println!("successfully added node '{}' to cluster.", env.node);
    Ok(0)
}

/// The checks before a join; each failure is a `* ...` line (warnings with `--force`).
/// Returns the address the node joins with.
pub fn assert_joinable(env: &Env, args: &Args) -> Result<String> {
    let mut problems = Vec::new();
    if env.my_cluster()?.is_some() {
        problems.push("cluster config '/etc/pve/corosync.conf' already exists".to_string());
    }
    if std::fs::read_dir(env.qemu_dir(&env.node)).is_ok_and(|mut d| d.next().is_some()) {
        problems.push("this host already contains virtual guests".to_string());
    }
    let my_ip = match local_address(args.opt("link0")) {
        Ok(ip) => ip,
        Err(f) => {
            problems.push(f.message);
            String::new()
        }
    };
    if !problems.is_empty() && !args.flag("force") {
        let lines: String = problems.iter().map(|p| format!("* {p}\n")).collect();
        return Err(Failure::die(format!("{lines}Check if node may join a cluster failed!")));
    }
    Ok(my_ip)
}

/// Joins the cluster that `target_ip` belongs to, as its API would: the member must answer,
/// its fingerprint match and its partition be quorate. (The password is not checked.)
pub fn join(
    env: &Env,
    target_ip: &str,
    fingerprint: Option<&str>,
    my_ip: String,
    args: &Args,
) -> std::result::Result<(), String> {
    let (target, target_quorate) = heartbeat::ping(target_ip)
        .ok_or_else(|| format!("500 Can't connect to {target_ip}:8006 (Connection refused)"))?;
    let mut cluster =
        env.cluster().map_err(|f| f.message)?.ok_or("500 cluster not ready - no cluster configured")?;
    if cluster.member(&target).is_none() {
        return Err(format!("500 node '{target}' is not part of a cluster"));
    }
    let expected = env.fingerprint(&target).map_err(|f| f.message)?;
    if fingerprint != Some(expected.as_str()) {
        return Err(format!("500 Can't connect to {target_ip}:8006 (certificate fingerprint mismatch)"));
    }
    if !target_quorate {
        return Err("cluster not ready - no quorum?".into());
    }
    if cluster.member(&env.node).is_some() {
        return Err(format!("can't add existing node '{}'", env.node));
    }
    if let Some(other) = cluster.nodes.iter().find(|n| n.ip == my_ip) {
        return Err(format!(
            "corosync: address '{my_ip}' already used on link ring0_addr by node '{}'",
            other.name
        ));
    }
    let nodeid = args
        .opt("nodeid")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| cluster.nodes.iter().map(|n| n.nodeid).max().unwrap_or(0) + 1);
    let votes = args.opt("votes").and_then(|n| n.parse().ok()).unwrap_or(1);
    cluster.nodes.push(ClusterNode { name: env.node.clone(), nodeid, ip: my_ip, votes });
    cluster.config_version += 1;
    env.fingerprint(&env.node).map_err(|f| f.message)?;
    env.save_cluster(&cluster).map_err(|f| f.message)
}

/// `pvecm status`: exit 0 quorate, 2 not quorate.
fn status(env: &Env) -> Result<u8> {
    let Some(cluster) = env.my_cluster()? else { return Err(Failure::die(NOT_CLUSTERED)) };
    let q = env.quorum()?;
    let me = cluster.member(&env.node).expect("member");
    let now = chrono::Local::now().format("%a %b %e %H:%M:%S %Y");
    println!("Cluster information\n-------------------");
    println!(
        "Name:             {}\nConfig Version:   {}\nTransport:        knet\nSecure auth:      on\n",
        cluster.name, cluster.config_version
    );
    println!("Quorum information\n------------------");
    println!(
        "Date:             {now}\nQuorum provider:  corosync_votequorum\nNodes:            {}",
        q.online.len()
    );
    println!(
        "Node ID:          0x{:08x}\nRing ID:          1.{:x}",
        me.nodeid,
        cluster.config_version + 0x50
    );
    println!("Quorate:          {}\n", if q.quorate() { "Yes" } else { "No" });
    println!("Votequorum information\n----------------------");
    println!(
        "Expected votes:   {}\nHighest expected: {}\nTotal votes:      {}",
        q.expected_votes, q.expected_votes, q.total_votes
    );
    // corosync-quorumtool: each flag followed by a space; a Qdevice column and line while a
    // QDevice is registered (the stand-in's nodes always run its daemon).
    let flags = format!(
        "{}{}",
        if q.quorate() { "Quorate " } else { "" },
        if cluster.qdevice.is_some() { "Qdevice " } else { "" }
    );
    if q.quorate() {
        println!("Quorum:           {}  \nFlags:            {flags}\n", q.needed());
    } else {
        println!("Quorum:           {} Activity blocked\nFlags:            {flags}\n", q.needed());
    }
    let column = |cell: &str| if cluster.qdevice.is_some() { format!(" {cell:>10}") } else { String::new() };
    println!(
        "Membership information\n----------------------\n    Nodeid      Votes{} Name",
        column("Qdevice")
    );
    let vote_flags = if q.qdevice_voting { "A,V,NMW" } else { "A,NV,NMW" };
    for n in cluster.nodes.iter().filter(|n| q.online.contains(&n.name)) {
        let local = if n.name == env.node { " (local)" } else { "" };
        println!("0x{:08x} {:>10}{} {}{local}", n.nodeid, n.votes, column(vote_flags), n.ip);
    }
    if let Some(qdevice) = &cluster.qdevice {
        match q.qdevice_voting {
            true => println!("0x00000000 {:>10}{} Qdevice", qdevice.votes, column("")),
            false => println!("0x00000000 {:>10}{} Qdevice (votes {})", 0, column(""), qdevice.votes),
        }
    }
    Ok(if q.quorate() { 0 } else { 2 })
}

/// Every member must be online for `pvecm qdevice setup|remove`.
fn require_all_online(env: &Env, cluster: &ClusterConfig) -> Result<()> {
    let online = env.quorum()?.online;
    match cluster.nodes.iter().find(|n| !online.contains(&n.name)) {
        Some(n) => {
            Err(Failure::die(format!("All nodes must be online! Node {} is offline, aborting.", n.name)))
        }
        None => Ok(()),
    }
}

/// `pvecm qdevice setup ADDRESS [--force]`: the checks and messages of pve-cluster's
/// `setup_qdevice`. The real one reaches the qnetd host over SSH to exchange certificates;
/// here the host must answer as the lab's arbiter ([`crate::qnetd`]).
fn qdevice_setup(env: &Env, args: &Args) -> Result<u8> {
    let address = args.pos(2, "address")?.to_string();
    if address.parse::<std::net::IpAddr>().is_err() {
        return Err(param_error("address", "value does not look like a valid IP address"));
    }
    let Some(mut cluster) = env.my_cluster()? else { return Err(Failure::die(NOT_CLUSTERED)) };
    require_all_online(env, &cluster)?;
    if cluster.qdevice.is_some() && !args.flag("force") {
        return Err(Failure::die("QDevice already configured!"));
    }
    if cluster.nodes.len() % 2 == 1 {
        if !args.flag("force") {
            return Err(Failure::die("Clusters with an odd node count are not officially supported!"));
        }
        return Err(Failure::die("pve-standin: the 'lms' algorithm (odd node count) is not implemented"));
    }
    println!("\nINFO: initializing qnetd server");
    if !qnetd::answers(&address) {
        return Err(Failure::die(format!(
            "command 'ssh-copy-id -i /root/.ssh/id_rsa root@{address}' failed: exit code 1"
        )));
    }
    for step in [
        "copying CA cert and initializing on all nodes",
        "generating cert request",
        "copying exported cert request to qnetd server",
        "sign and export cluster cert",
        "copy exported CRT",
        "import certificate",
        "copy and import pk12 cert to all nodes",
    ] {
        println!("\nINFO: {step}");
    }
    env.require_quorum()?;
    if cluster.qdevice.is_some() {
        return Err(Failure::die("Qdevice already configured, must be removed before setting up new one!"));
    }
    println!("\nINFO: add QDevice to cluster configuration");
    cluster.qdevice = Some(QDevice { host: address, algorithm: "ffsplit".into(), votes: 1 });
    cluster.config_version += 1;
    env.save_cluster(&cluster)?;
    for n in &cluster.nodes {
        println!("\nINFO: start and enable corosync qdevice daemon on node '{}'...", n.name);
    }
    Ok(0)
}

/// `pvecm qdevice remove`.
fn qdevice_remove(env: &Env) -> Result<u8> {
    let Some(mut cluster) = env.my_cluster()? else { return Err(Failure::die(NOT_CLUSTERED)) };
    require_all_online(env, &cluster)?;
    env.require_quorum()?;
    if cluster.qdevice.take().is_none() {
        return Err(Failure::die("No QDevice configured!"));
    }
    cluster.config_version += 1;
    env.save_cluster(&cluster)?;
    println!("\nRemoved Qdevice.");
    Ok(0)
}

/// `pvecm nodes`: decimal ids and names, starting with a blank line.
fn nodes(env: &Env) -> Result<u8> {
    let Some(cluster) = env.my_cluster()? else { return Err(Failure::die(NOT_CLUSTERED)) };
    let q = env.quorum()?;
    println!("\nMembership information\n----------------------\n    Nodeid      Votes Name");
    for n in cluster.nodes.iter().filter(|n| q.online.contains(&n.name)) {
        let local = if n.name == env.node { " (local)" } else { "" };
        println!("{:>10} {:>10} {}{local}", n.nodeid, n.votes, n.name);
    }
    Ok(0)
}

/// `pvecm expected N`: runtime only; refused below the current total votes or when it would
/// make a quorate cluster non-quorate (votequorum's CS_ERR_INVALID_PARAM).
fn expected(env: &Env, args: &Args) -> Result<u8> {
    let votes: u32 = args
        .pos(1, "expected")?
        .parse()
        .map_err(|_| param_error("expected", "type check ('integer') failed"))?;
    if env.my_cluster()?.is_none() {
        return Err(Failure::die(NOT_CLUSTERED));
    }
    let q = env.quorum()?;
    if votes == 0 || votes < q.total_votes || (q.quorate() && q.total_votes < votes / 2 + 1) {
        return Err(Failure::with_code("Unable to set expected votes: CS_ERR_INVALID_PARAM", 1));
    }
    env.set_expected_override(votes)?;
    Ok(0)
}

/// `pvecm delnode NAME|IP`: the node's directory under `nodes/` stays, as in Proxmox.
fn delnode(env: &Env, args: &Args) -> Result<u8> {
    let who = args.pos(1, "node")?;
    let Some(mut cluster) = env.my_cluster()? else { return Err(Failure::die(NOT_CLUSTERED)) };
    let Some(node) = cluster.nodes.iter().find(|n| n.name == who || n.ip == who).cloned() else {
        return Err(Failure::die(format!("Node/IP: {who} is not a known host of the cluster.")));
    };
    if node.name == env.node {
        return Err(Failure::die("Cannot delete myself from cluster!"));
    }
    env.require_quorum()?;
    cluster.nodes.retain(|n| n.name != node.name);
    cluster.config_version += 1;
    env.save_cluster(&cluster)?;
    println!("Killing node {}", node.nodeid);
    if !env.quorum()?.online.contains(&node.name) {
        eprintln!("Could not kill node (error = CS_ERR_NOT_EXIST)");
    }
    Ok(0)
}
