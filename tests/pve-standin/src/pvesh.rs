//! `pvesh get|create|set|delete PATH` on the API paths the toolkit uses.

use serde_json::{json, Map, Value};

use crate::args::Args;
use crate::cluster::{now_ms, read_json, Env};
use crate::sectioncfg::{self, Section};
use crate::{output, storage, task, vmconf, vmproc, Failure, Result};

/// Status data of another node older than this is gone (pmxcfs's RRD expiry).
const STATUS_EXPIRY_MS: u64 = 300_000;
/// Every lab node claims this much RAM.
const NODE_MAXMEM: u64 = 16 << 30;
const NODE_BASE_MEM: u64 = 1 << 30;

pub fn main(env: &Env, raw: &[String]) -> Result<u8> {
    // `pvesh --noproxy ...`, taken off before the command (pvesh.pm's compatibility code).
    let (leading_noproxy, raw) = match raw.split_first() {
        Some((first, rest)) if first == "--noproxy" => (true, rest),
        _ => (false, raw),
    };
    let args = Args::parse(raw)?;
    let verb = args.pos(0, "command")?;
    let path = args.pos(1, "api_path")?.trim_end_matches('/').to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // pvesh runs a call on another node's path on that node (PVE/CLI/pvesh.pm `proxy_handler`).
    if let ["nodes", node, _, ..] = parts.as_slice() {
        if *node != env.node {
            return proxy(env, node, verb, &path, &args, leading_noproxy || args.flag("noproxy"));
        }
    }
    let value = match (verb, parts.as_slice()) {
        ("get", ["cluster", "status"]) => cluster_status(env)?,
        ("get", ["cluster", "resources"]) => resources(env, args.opt("type"))?,
        ("get", ["cluster", "backup"]) => backup_jobs(env)?,
        ("get", ["cluster", "config", "join"]) => join_info(env)?,
        ("get", ["nodes"]) => nodes(env)?,
        ("get", ["nodes", node, "status"]) => node_status(env, node)?,
        ("get", ["nodes", node, "storage"]) => {
            require_online(env, node)?;
            Value::Array(storage::all(env)?.iter().map(storage::status_json).collect())
        }
        ("get", ["nodes", node, "qemu", vmid, "config"]) => vm_config(env, node, vmid)?,
        ("get", ["nodes", _, "tasks", upid, "status"]) => task::status(env, upid)?,
        ("create", ["cluster", "backup"]) => {
            create_backup_job(env, &args)?;
            Value::Null
        }
        ("create", ["cluster", "config", "join"]) => api_join(env, &args)?,
        ("create", ["nodes", node, "migrateall"]) => migrateall(env, node, &args)?,
        ("create", ["nodes", _, "qemu", vmid, "status", "start"]) => vm_start(env, vmid)?,
        ("create", ["nodes", _, "qemu", vmid, "status", "stop"]) => vm_stop(env, vmid)?,
        ("create", ["nodes", _, "qemu", vmid, "migrate"]) => vm_migrate(env, vmid, &args)?,
        ("delete", ["cluster", "backup", id]) => {
            delete_backup_job(env, id)?;
            Value::Null
        }
        ("set", ["nodes", node, "qemu", vmid, "config"]) => {
            set_vm_config(env, node, vmid, &args)?;
            Value::Null
        }
        _ => return Err(Failure::die(format!("no '{verb}' handler for '{path}'"))),
    };
    output::print(&value, args.opt("output-format"))?;
    Ok(0)
}

fn flag(b: bool) -> u8 {
    u8::from(b)
}

fn cluster_status(env: &Env) -> Result<Value> {
    let Some(cluster) = env.my_cluster()? else {
        let ip = cluster_ip(env, &env.node);
        return Ok(
            json!([{"id": format!("node/{}", env.node), "ip": ip, "level": "", "local": 1, "name": env.node, "nodeid": 0, "online": 1, "type": "node"}]),
        );
    };
    let q = env.quorum()?;
    let mut out = vec![
        json!({"id": "cluster", "name": cluster.name, "nodes": cluster.nodes.len(), "quorate": flag(q.quorate()), "type": "cluster", "version": cluster.config_version}),
    ];
    for n in &cluster.nodes {
        out.push(json!({"id": format!("node/{}", n.name), "ip": n.ip, "level": "", "local": flag(n.name == env.node), "name": n.name, "nodeid": n.nodeid, "online": flag(q.online.contains(&n.name)), "type": "node"}));
    }
    Ok(Value::Array(out))
}

fn cluster_ip(env: &Env, node: &str) -> String {
    env.my_cluster().ok().flatten().and_then(|c| c.member(node).map(|n| n.ip.clone())).unwrap_or_default()
}

/// Which VMs run on `node` as far as this node knows: live for itself, else the node's last
/// published status, `None` once it expired.
fn running_on(env: &Env, node: &str) -> Option<Vec<u32>> {
    if node == env.node {
        return vmproc::local_running(env).ok();
    }
    let status: Value =
        read_json(&env.root.join(".standin/status").join(format!("{node}.json"))).ok().flatten()?;
    let fresh = now_ms().saturating_sub(status["time"].as_u64()?) < STATUS_EXPIRY_MS;
    fresh.then(|| serde_json::from_value(status["running"].clone()).unwrap_or_default())
}

/// Every VM config in the cluster file system: (node, vmid).
fn all_vms(env: &Env) -> Vec<(String, u32)> {
    let mut vms = Vec::new();
    for entry in std::fs::read_dir(env.root.join("nodes")).into_iter().flatten().flatten() {
        let node = entry.file_name().to_string_lossy().into_owned();
        for conf in std::fs::read_dir(entry.path().join("qemu-server")).into_iter().flatten().flatten() {
            if let Some(vmid) =
                conf.file_name().to_string_lossy().strip_suffix(".conf").and_then(|v| v.parse().ok())
            {
                vms.push((node.clone(), vmid));
            }
        }
    }
    vms.sort_by_key(|(_, vmid)| *vmid);
    vms
}

fn resources(env: &Env, kind: Option<&str>) -> Result<Value> {
    let mut out = Vec::new();
    if kind.is_none_or(|k| k == "vm") {
        for (node, vmid) in all_vms(env) {
            let config = vmconf::load(env, &node, vmid)?;
            let mut entry = json!({"id": format!("qemu/{vmid}"), "node": node, "type": "qemu", "vmid": vmid});
            match running_on(env, &node) {
                Some(running) => {
                    let up = running.contains(&vmid);
                    let maxmem = vmconf::memory_mib(&config) << 20;
                    let extra = json!({
                        "cpu": if up { 0.01 } else { 0.0 }, "disk": 0, "diskread": 0, "diskwrite": 0,
                        "maxcpu": config.get("cores").and_then(|c| c.parse::<u64>().ok()).unwrap_or(1),
                        "maxdisk": 4u64 << 30, "maxmem": maxmem, "mem": if up { maxmem / 2 } else { 0 },
                        "name": config.get("name").cloned().unwrap_or_else(|| format!("VM {vmid}")),
                        "netin": 0, "netout": 0, "status": if up { "running" } else { "stopped" },
                        "template": 0, "uptime": 0,
                    });
                    merge(&mut entry, extra);
                }
                None => merge(&mut entry, json!({"status": "unknown"})),
            }
            if let Some(lock) = config.get("lock") {
                merge(&mut entry, json!({"lock": lock}));
            }
            out.push(entry);
        }
    }
    if kind.is_none_or(|k| k == "node") {
        if let Value::Array(nodes) = nodes(env)? {
            out.extend(nodes.into_iter().map(|mut n| {
                let name = n["node"].clone();
                merge(
                    &mut n,
                    json!({"id": format!("node/{}", name.as_str().unwrap_or_default()), "type": "node"}),
                );
                n
            }));
        }
    }
    Ok(Value::Array(out))
}

fn merge(target: &mut Value, extra: Value) {
    if let (Value::Object(t), Value::Object(e)) = (target, extra) {
        t.extend(e);
    }
}

/// Memory in use on `node`: a base plus the RAM of its running VMs.
fn node_mem(env: &Env, node: &str) -> u64 {
    let running = running_on(env, node).unwrap_or_default();
    NODE_BASE_MEM
        + running
            .iter()
            .filter_map(|vmid| vmconf::load(env, node, *vmid).ok())
            .map(|c| vmconf::memory_mib(&c) << 20)
            .sum::<u64>()
}

fn nodes(env: &Env) -> Result<Value> {
    let q = env.quorum()?;
    let mut out = Vec::new();
    for node in env.known_nodes()? {
        let online = q.online.contains(&node);
        let mut entry = json!({"id": format!("node/{node}"), "level": "", "node": node, "ssl_fingerprint": env.fingerprint(&node)?, "status": if online { "online" } else { "offline" }, "type": "node"});
        if online {
            merge(
                &mut entry,
                json!({"cpu": 0.02, "disk": 2u64 << 30, "maxcpu": 2, "maxdisk": 32u64 << 30, "maxmem": NODE_MAXMEM, "mem": node_mem(env, &node), "uptime": 3600}),
            );
        }
        out.push(entry);
    }
    Ok(Value::Array(out))
}

fn require_online(env: &Env, node: &str) -> Result<()> {
    if !env.known_nodes()?.iter().any(|n| n == node) {
        return Err(Failure::die(format!("hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known")));
    }
    if !env.quorum()?.online.iter().any(|n| n == node) {
        let ip = cluster_ip(env, node);
        return Err(Failure::die(format!(
            "proxy handler failed: ssh: connect to host {ip} port 22: No route to host"
        )));
    }
    Ok(())
}

fn node_status(env: &Env, node: &str) -> Result<Value> {
    require_online(env, node)?;
    let used = node_mem(env, node);
    Ok(json!({
        "cpu": 0.02, "wait": 0, "loadavg": ["0.35", "0.40", "0.42"], "uptime": 3600,
        "memory": {"total": NODE_MAXMEM, "used": used, "free": NODE_MAXMEM - used, "available": NODE_MAXMEM - used},
        "swap": {"total": 0, "used": 0, "free": 0},
        "rootfs": {"total": 32u64 << 30, "used": 2u64 << 30, "free": 30u64 << 30, "avail": 30u64 << 30},
        "cpuinfo": {"cpus": 2, "cores": 2, "sockets": 1, "model": "pve-standin virtual CPU"},
        "pveversion": "pve-manager/8.2.4/faa83925c9641325", "kversion": "Linux 6.8.8-2-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.8-2",
    }))
}

/// Numbers in configs come back as JSON numbers, everything else as strings.
fn typed(v: &str) -> Value {
    v.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(v))
}

fn vm_config(env: &Env, node: &str, vmid: &str) -> Result<Value> {
    let vmid: u32 =
        vmid.parse().map_err(|_| crate::args::param_error("vmid", "type check ('integer') failed"))?;
    let config = vmconf::load(env, node, vmid)?;
    let mut map: Map<String, Value> = config.iter().map(|(k, v)| (k.clone(), typed(v))).collect();
    map.insert("digest".into(), Value::from(format!("{:040x}", vmconf::render(&config).len())));
    Ok(Value::Object(map))
}

fn set_vm_config(env: &Env, node: &str, vmid: &str, args: &Args) -> Result<()> {
    let vmid: u32 =
        vmid.parse().map_err(|_| crate::args::param_error("vmid", "type check ('integer') failed"))?;
    let mut config = vmconf::load(env, node, vmid)?;
    vmconf::apply_options(&mut config, &args.options)?;
    vmconf::save(env, node, vmid, &config)
}

fn jobs_path(env: &Env) -> std::path::PathBuf {
    env.root.join("jobs.cfg")
}

fn backup_jobs(env: &Env) -> Result<Value> {
    let jobs = sectioncfg::read(&jobs_path(env), "")?;
    Ok(Value::Array(
        jobs.iter()
            .filter(|s| s.kind == "vzdump")
            .map(|s| {
                let mut map: Map<String, Value> = s
                    .props
                    .iter()
                    .map(|(k, v)| {
                        let value = if k == "prune-backups" {
                            Value::Object(
                                v.split(',')
                                    .filter_map(|kv| kv.split_once('='))
                                    .map(|(a, b)| (a.to_string(), Value::from(b)))
                                    .collect(),
                            )
                        } else if k == "vmid" {
                            Value::from(v.as_str())
                        } else {
                            typed(v)
                        };
                        (k.clone(), value)
                    })
                    .collect();
                map.insert("id".into(), Value::from(s.id.as_str()));
                map.insert("type".into(), Value::from("vzdump"));
                Value::Object(map)
            })
            .collect(),
    ))
}

fn create_backup_job(env: &Env, args: &Args) -> Result<()> {
    if args.opt("schedule").is_none() {
        return Err(crate::args::param_error("schedule", "property is missing and it is not optional"));
    }
    env.require_quorum()?;
    let mut jobs = sectioncfg::read(&jobs_path(env), "")?;
    let id = args.opt("id").map(str::to_string).unwrap_or_else(|| {
        format!("backup-{:08x}-{:04x}", now_ms() & 0xffff_ffff, std::process::id() & 0xffff)
    });
    if jobs.iter().any(|j| j.id == id) {
        return Err(Failure::die(format!("Job '{id}' already exists")));
    }
    let mut section = Section { kind: "vzdump".into(), id, props: Default::default() };
    for (k, v) in args.options.iter().filter(|(k, _)| !["id", "output-format"].contains(&k.as_str())) {
        section.props.insert(k.clone(), v.clone());
    }
    section.props.entry("enabled".into()).or_insert_with(|| "1".into());
    jobs.push(section);
    sectioncfg::write(&jobs_path(env), &jobs, &["schedule"])
}

fn delete_backup_job(env: &Env, id: &str) -> Result<()> {
    env.require_quorum()?;
    let mut jobs = sectioncfg::read(&jobs_path(env), "")?;
    let before = jobs.len();
    jobs.retain(|j| j.id != id);
    if jobs.len() == before {
        return Err(Failure::die(format!("No such job '{id}'")));
    }
    sectioncfg::write(&jobs_path(env), &jobs, &["schedule"])
}

fn join_info(env: &Env) -> Result<Value> {
    let Some(cluster) = env.my_cluster()? else {
        return Err(Failure::die("node is not in a cluster, no join info available!"));
    };
    let nodelist: Vec<Value> = cluster
        .nodes
        .iter()
        .map(|n| {
            Ok(json!({"name": n.name, "nodeid": n.nodeid.to_string(), "pve_addr": n.ip, "pve_fp": env.fingerprint(&n.name)?, "quorum_votes": n.votes.to_string(), "ring0_addr": n.ip}))
        })
        .collect::<Result<_>>()?;
    Ok(
        json!({"config_digest": format!("{:040x}", cluster.config_version), "nodelist": nodelist, "preferred_node": env.node, "totem": {"cluster_name": cluster.name, "config_version": cluster.config_version.to_string(), "secauth": "on", "version": "2"}}),
    )
}

/// `pvesh create /cluster/config/join --hostname H --fingerprint FP --password PW`: a task;
/// pvesh prints its UPID and exits 0 whether or not the join worked.
fn api_join(env: &Env, args: &Args) -> Result<Value> {
    let hostname = args
        .opt("hostname")
        .ok_or_else(|| crate::args::param_error("hostname", "property is missing and it is not optional"))?;
    args.opt("password")
        .ok_or_else(|| crate::args::param_error("password", "property is missing and it is not optional"))?;
    let my_ip = crate::pvecm::assert_joinable(env, args)?;
    let upid = task::upid(&env.node, "clusterjoin", "");
    let result = crate::pvecm::join(env, hostname, args.opt("fingerprint"), my_ip, args);
    let exit = result.as_ref().err().cloned().unwrap_or_else(|| "OK".into());
    task::record(env, &upid, &env.node, "clusterjoin", "", Some(&exit))?;
    Ok(Value::from(upid))
}

/// Shell-quotes one word for the remote shell ssh hands the command to.
fn shell_quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Perl's display of the text a JSON decode failed before: 20 characters, escapes, `...`.
fn perl_before(text: &str) -> String {
    if text.is_empty() {
        return "(end of string)".into();
    }
    let shown: String = text.chars().take(20).collect::<String>().replace('\n', "\\n");
    if text.chars().count() > 20 {
        shown + "..."
    } else {
        shown
    }
}

/// `pvesh VERB /nodes/NODE/...` for another node, as PVE/CLI/pvesh.pm's `proxy_handler`: runs
/// `pvesh --noproxy VERB PATH --output-format json ARGS` there over root ssh, then prints the
/// decoded result in this call's format. The remote stderr comes through; on a remote failure
/// its last line becomes `proxy handler failed: LINE` (pve-common `run_command` with `errmsg`),
/// exit 255. An offline member gives ssh's connection error the same way.
fn proxy(env: &Env, node: &str, verb: &str, path: &str, args: &Args, noproxy: bool) -> Result<u8> {
    if !env.known_nodes()?.iter().any(|n| n == node) {
        return Err(Failure::die(format!(
            "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
        )));
    }
    if noproxy {
        return Err(Failure::die("proxy loop detected - aborting"));
    }
    let ip = cluster_ip(env, node);
    if !env.quorum()?.online.iter().any(|n| n == node) {
        return Err(Failure::die(format!(
            "proxy handler failed: ssh: connect to host {ip} port 22: No route to host"
        )));
    }
    let mut remote: Vec<String> = ["pvesh", "--noproxy", verb, path, "--output-format", "json"]
        .iter()
        .map(|w| shell_quote(w))
        .collect();
    for (k, v) in
        args.options.iter().filter(|(k, _)| !["output-format", "quiet", "noproxy"].contains(&k.as_str()))
    {
        remote.push(format!("--{k}"));
        remote.push(shell_quote(v));
    }
    let out = std::process::Command::new(&env.ssh)
        .args(crate::SSH_OPTIONS)
        .arg(format!("root@{ip}"))
        .args(&remote)
        .stdin(std::process::Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut lines: Vec<&str> = stderr.lines().collect();
    let last = lines.pop();
    lines.iter().for_each(|l| eprintln!("{l}"));
    if !out.status.success() {
        let reason = last
            .map(str::to_string)
            .unwrap_or_else(|| format!("exit code {}", out.status.code().unwrap_or(255)));
        return Err(Failure::die(format!("proxy handler failed: {reason}")));
    }
    if let Some(line) = last {
        eprintln!("{line}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A task's log precedes its UPID on the remote stdout, and decode_json refuses it.
    let value: Value = serde_json::from_str(&stdout).map_err(|_| {
        Failure::die(format!(
            "malformed JSON string, neither tag, array, object, number, string or atom, at character offset 0 (before \"{}\")",
            perl_before(&stdout)
        ))
    })?;
    output::print(&value, args.opt("output-format"))?;
    Ok(0)
}

fn parse_vmid(vmid: &str) -> Result<u32> {
    vmid.parse().map_err(|_| crate::args::param_error("vmid", "type check ('integer') failed"))
}

/// `pvesh create /nodes/N/qemu/VMID/status/start`: checks quorum, then a `qmstart` task
/// (qemu-server API2/Qemu.pm `vm_start`); a missing config or lock fails the task.
fn vm_start(env: &Env, vmid: &str) -> Result<Value> {
    let vmid = parse_vmid(vmid)?;
    env.require_quorum()?;
    let upid = task::cli_worker(env, "qmstart", &vmid.to_string(), || {
        let config = vmconf::load(env, &env.node, vmid)?;
        if let Some(lock) = config.get("lock") {
            return Err(Failure::die(format!("VM is locked ({lock})")));
        }
        vmproc::start(env, vmid)
    })?;
    Ok(Value::from(upid))
}

/// `pvesh create /nodes/N/qemu/VMID/status/stop`: a `qmstop` task; stopping a stopped VM is OK.
fn vm_stop(env: &Env, vmid: &str) -> Result<Value> {
    let vmid = parse_vmid(vmid)?;
    let upid = task::cli_worker(env, "qmstop", &vmid.to_string(), || {
        vmconf::load(env, &env.node, vmid)?;
        env.require_quorum()?;
        vmproc::stop(env, vmid)
    })?;
    Ok(Value::from(upid))
}

/// `pvesh create /nodes/N/qemu/VMID/migrate --target T [--online 1]`: the checks of `qm
/// migrate` before the task (the API's synchronous part), then a `qmigrate` task whose log
/// goes to stdout before the UPID.
fn vm_migrate(env: &Env, vmid: &str, args: &Args) -> Result<Value> {
    let vmid = parse_vmid(vmid)?;
    let target = args
        .opt("target")
        .ok_or_else(|| crate::args::param_error("target", "property is missing and it is not optional"))?;
    let plan = crate::qm::migrate_checks(env, vmid, target, args.flag("online"))?;
    let upid = task::cli_worker(env, "qmigrate", &vmid.to_string(), || crate::qm::migrate_work(env, &plan))?;
    Ok(Value::from(upid))
}

/// `pvesh create /nodes/SRC/migrateall --target DST --max-workers N [--vms 100,101]`: prints
/// the UPID and migrates in the background, one `qm migrate` (its own qmigrate task) per VM.
fn migrateall(env: &Env, node: &str, args: &Args) -> Result<Value> {
    let target = args
        .opt("target")
        .ok_or_else(|| crate::args::param_error("target", "property is missing and it is not optional"))?;
    if args.opt("max-workers").or(args.opt("maxworkers")).is_none() {
        return Err(Failure::die(
            "either 'max-workers' parameter or max_workers in datacenter.cfg must be set!",
        ));
    }
    let wanted: Option<Vec<u32>> =
        args.opt("vms").map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    let vms: Vec<u32> = all_vms(env)
        .into_iter()
        .filter(|(n, vmid)| n == node && wanted.as_ref().is_none_or(|w| w.contains(vmid)))
        .map(|(_, vmid)| vmid)
        .collect();
    let upid = task::upid(node, "migrateall", "");
    task::record(env, &upid, node, "migrateall", "", None)?;
    // The worker outlives this pvesh call, as a forked Proxmox worker does; the task fails
    // when any migration failed.
    let exe = std::env::current_exe()?;
    let exe = exe.display();
    let script: String = vms
        .iter()
        .map(|vmid| format!("{exe} qm migrate {vmid} {target} --online >/dev/null 2>&1 || ok=0; "))
        .collect();
    let done = format!("{exe} task-done '{upid}' {node} migrateall $ok");
    std::process::Command::new("setsid")
        .args(["sh", "-c", &format!("ok=1; {script}{done}")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    Ok(Value::from(upid))
}
