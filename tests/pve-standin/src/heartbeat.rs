//! The membership service (one per node, started by the node's systemd): members send each
//! other a UDP heartbeat every half second over the LAN, so quorum follows what the network
//! really lets through (`lab cut`, `lab partition`, `lab power-off`). It also publishes this
//! node's VM states for `/cluster/resources`, like pmxcfs's status broadcast.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::cluster::{now_ms, write_json, ClusterConfig, Env, Membership, QVote, HEARTBEAT_PORT};
use crate::{qnetd, vmproc, Result};

const PERIOD: Duration = Duration::from_millis(500);

pub fn run(env: &Env) -> Result<u8> {
    let socket = UdpSocket::bind(("0.0.0.0", HEARTBEAT_PORT))?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut heard: BTreeMap<String, u64> = BTreeMap::new();
    let mut writable = None;
    let mut qdevice_vote: Option<QVote> = None;
    loop {
        let round = Instant::now();
        let cluster = env.cluster().ok().flatten().filter(|c| c.member(&env.node).is_some());
        // What this round reports to the QDevice arbiter: a vote it grants is for this partition.
        let mut reported = None;
        if let Some(cluster) = cluster.as_ref() {
            let message = format!("hb {}", env.node);
            for peer in cluster.nodes.iter().filter(|n| n.name != env.node) {
                // A send to an unreachable peer fails or vanishes: both mean "not heard".
                let _ = socket.send_to(message.as_bytes(), (peer.ip.as_str(), HEARTBEAT_PORT));
            }
            if let Some(qdevice) = &cluster.qdevice {
                let request = report(env, cluster, &heard);
                let _ = socket.send_to(request.to_message().as_bytes(), (qdevice.host.as_str(), qnetd::PORT));
                reported = Some((now_ms(), request.partition.into_iter().collect::<Vec<_>>()));
            }
        }
        while round.elapsed() < PERIOD {
            let mut buf = [0u8; 256];
            let Ok((len, from)) = socket.recv_from(&mut buf) else { continue };
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            match text.split_once(' ') {
                Some(("hb", name)) => {
                    heard.insert(name.to_string(), now_ms());
                }
                Some(("qvote", _)) => {
                    let granted = cluster.as_ref().and_then(|c| qnetd::parse_reply(&text, &c.name));
                    if let (Some(granted), Some((asked_at, partition))) = (granted, reported.clone()) {
                        // Counted from when it was asked, for that partition only; a refusal
                        // takes effect at once (saved now, not at the round's end).
                        qdevice_vote = granted.then_some(QVote { at: asked_at, partition });
                        let _ = env.save_membership(&Membership {
                            heard: heard.clone(),
                            qdevice_vote: qdevice_vote.clone(),
                        });
                    }
                }
                Some(("ping", _)) => {
                    let quorate = env.quorum().map(|q| q.quorate()).unwrap_or(false);
                    let _ =
                        socket.send_to(format!("pong {} {}", env.node, u8::from(quorate)).as_bytes(), from);
                }
                _ => {}
            }
        }
        heard.insert(env.node.clone(), now_ms());
        let _ = env.save_membership(&Membership { heard: heard.clone(), qdevice_vote: qdevice_vote.clone() });
        let quorate = env.quorum().map(|q| q.quorate()).unwrap_or(false);
        if writable != Some(quorate) && set_writable(env, quorate) {
            writable = Some(quorate);
        }
        if quorate {
            let _ = publish_status(env);
        }
    }
}

/// This node's report to the QDevice arbiter: its partition, the members it hears.
fn report(env: &Env, cluster: &ClusterConfig, heard: &BTreeMap<String, u64>) -> qnetd::Request {
    let partition = cluster.online(&env.node, heard, now_ms()).into_iter().collect();
    let nodeid = cluster.member(&env.node).map_or(0, |n| n.nodeid);
    qnetd::Request { cluster: cluster.name.clone(), nodeid, node: env.node.clone(), partition }
}

/// Like pmxcfs, the cluster file system is read-only on a node without quorum, for every
/// program (a plain `mv` too). Only where it is a mount of its own (the lab's shared /etc/pve).
fn set_writable(env: &Env, writable: bool) -> bool {
    let root = env.root.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if !mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(root.as_str())) {
        return true;
    }
    let mode = if writable { "remount,bind,rw" } else { "remount,bind,ro" };
    std::process::Command::new("mount").args(["-o", mode, &root]).status().is_ok_and(|s| s.success())
}

/// Writes `.standin/status/<node>.json`: when, and which local VMs run.
fn publish_status(env: &Env) -> Result<()> {
    let running = vmproc::local_running(env)?;
    let status = serde_json::json!({ "time": now_ms(), "running": running });
    write_json(&env.root.join(".standin/status").join(format!("{}.json", env.node)), &status)
}

/// Asks the heartbeat service at `ip` who it is and whether its partition is quorate; `None`
/// when nothing answers within a second.
pub fn ping(ip: &str) -> Option<(String, bool)> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_millis(250))).ok()?;
    for _ in 0..4 {
        socket.send_to(b"ping ?", (ip, HEARTBEAT_PORT)).ok()?;
        let mut buf = [0u8; 256];
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            if let Some((name, quorate)) = text.strip_prefix("pong ").and_then(|t| t.split_once(' ')) {
                return Some((name.to_string(), quorate == "1"));
            }
        }
    }
    None
}
