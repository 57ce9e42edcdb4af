//! `bench sweep`: the fleet liveness sweep at 1,270 targets, side by side in one run: the node
//! watch's sweep (`cias_core::node_watch::probe_all` as `dlll_cias-watch nodes` calls it, via
//! `crates/cias-core/examples/sweep_probe.rs`), parallel-ssh and Ansible's ping module.
//!
//! Everything happens in a throw-away network namespace with only `lo` up, so every address
//! 127.x.y.z answers inside it, and one sshd listens on port 22 there (throw-away host and
//! client keys, key login for root). Targets are 127.0.0.1 .. 127.0.4.254. Nothing is sent to
//! an address of the machine's own namespace. sshd's session shell would read root's
//! `~/.bashrc`; inside sshd's own mount namespace an empty file is mounted over it, as a
//! Proxmox node's stock one does nothing for a non-interactive shell (this machine's may run
//! pyenv, ~0.4 s a session).
//!
//! Per tool: wall time (spawn to exit), CPU time of the tool and its children (user and sys
//! from GNU time, plus any ssh connection master it left running, as /proc tells before it is
//! ended), and sshd's CPU for the same work (its utime + stime + those of the children it reaped,
//! /proc/PID/stat). Each starts on an idle sshd (no connection left, empty listen queues).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{median_max, Mode, Report};

const TARGETS: usize = 1_270;
const CHECK_TARGETS: usize = 20;
/// Runs of the watch's sweep per setting (it is quick); the peers run once.
const PROBE_RUNS: usize = 5;
/// No tool may run longer than this (then it is ended and the bench fails).
const TOOL_LIMIT_SECS: u32 = 1_800;
/// sshd's `MaxStartups`: unauthenticated connections before sshd starts dropping new ones at
/// random. The default 10:30:100 drops parallel-ssh's 32 and Ansible's 50 handshakes at once.
const MAX_STARTUPS: &str = "100:30:200";
/// Ports sshd also listens on, for the deep-queue setting (see [`Redirect`]).
const SPREAD_PORTS: std::ops::Range<u16> = 2200..2210;
/// The ssh client's options for the throw-away server: key login only, no host key kept.
const SSH_OPTIONS: [&str; 4] =
    ["BatchMode=yes", "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"];
/// Parallelism of the peers, as issue 17 sets them.
const PSSH_PARALLEL: u32 = 32;
const ANSIBLE_FORKS: u32 = 50;

/// Target `i`: 127.0.x.y, y in 1..=254 (as `sweep_probe` numbers them).
fn target(i: usize) -> String {
    format!("127.0.{}.{}", i / 254, i % 254 + 1)
}

/// A scratch directory, removed on drop.
#[derive(Debug)]
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The bench's network namespace; on drop every process left in it (only ones this bench
/// started: sshd, its sessions, ssh connection masters) is ended by PID and the namespace
/// deleted.
#[derive(Debug)]
struct Netns {
    name: String,
}

impl Netns {
    fn create() -> Result<Self> {
        let name = format!("cias-bench-sweep-{}", std::process::id());
        duct::cmd!("ip", "netns", "add", &name).run().context("ip netns add (needs root)")?;
        let ns = Self { name };
        duct::cmd!("ip", "-n", &ns.name, "link", "set", "lo", "up").run()?;
        Ok(ns)
    }

    /// `argv` run inside the namespace.
    fn cmd<S: AsRef<str>>(&self, argv: &[S]) -> duct::Expression {
        let mut args = vec!["netns".to_string(), "exec".into(), self.name.clone()];
        args.extend(argv.iter().map(|a| a.as_ref().to_string()));
        duct::cmd("ip", args)
    }

    fn pids(&self) -> Vec<u32> {
        duct::cmd!("ip", "netns", "pids", &self.name)
            .stderr_null()
            .read()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Ends `pids` (TERM, then KILL what is left after 2 s).
    fn end(pids: &[u32]) {
        if pids.is_empty() {
            return;
        }
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        let _ = duct::cmd("kill", &list).stderr_null().unchecked().run();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && pids.iter().any(|p| Path::new(&format!("/proc/{p}")).exists()) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut args = vec!["-KILL".to_string()];
        args.extend(list);
        let _ = duct::cmd("kill", &args).stderr_null().unchecked().run();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        Self::end(&self.pids());
        let _ = duct::cmd!("ip", "netns", "del", &self.name).stderr_null().unchecked().run();
    }
}

/// A process as /proc/PID/stat tells it.
#[derive(Debug, Clone, Copy)]
struct Stat {
    pid: u32,
    ppid: u32,
    /// utime + stime, seconds.
    own: f64,
    /// cutime + cstime (children it waited for), seconds.
    children: f64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after its closing parenthesis.
    let fields: Vec<&str> = text[text.rfind(')')? + 2..].split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).map(|t| t / 100.0);
    // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    Some(Stat {
        pid,
        ppid: fields.get(1)?.parse().ok()?,
        own: tick(11)? + tick(12)?,
        children: tick(13)? + tick(14)?,
    })
}

/// The one sshd of the namespace; killed when dropped.
#[derive(Debug)]
struct Sshd {
    pid: u32,
    dir: PathBuf,
    child: duct::Handle,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

impl Sshd {
    fn start(ns: &Netns, dir: &Path) -> Result<Self> {
        for key in ["host_key", "client_key"] {
            let path = dir.join(key);
            duct::cmd!("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cias-bench", "-f", &path)
                .stdout_null()
                .run()
                .context("ssh-keygen")?;
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys"))?;
        std::fs::write(dir.join("empty_bashrc"), "")?;
        let ports: String = std::iter::once(22).chain(SPREAD_PORTS).map(|p| format!("Port {p}\n")).collect();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "{ports}ListenAddress 0.0.0.0\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nStrictModes no\nUseDNS no\nPidFile {d}/sshd.pid\nMaxStartups {MAX_STARTUPS}\n\
                 Subsystem sftp /usr/lib/openssh/sftp-server\nLogLevel ERROR\n",
                d = dir.display()
            ),
        )?;
        std::fs::create_dir_all("/run/sshd")?; // sshd's privilege separation directory
        let script = "if [ -e /root/.bashrc ]; then mount --bind \"$1\" /root/.bashrc || exit 1; fi; exec /usr/sbin/sshd -D -e -f \"$2\"";
        let bashrc = dir.join("empty_bashrc").display().to_string();
        let config = dir.join("sshd_config").display().to_string();
        let child = ns
            .cmd(&["sh", "-c", script, "sh", &bashrc, &config])
            .stderr_path(dir.join("sshd.log"))
            .stdout_null()
            .unchecked()
            .start()
            .context("starting sshd (is openssh-server installed?)")?;
        let sshd = Self { pid: child.pids()[0], dir: dir.to_path_buf(), child };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(out) = sshd.child.try_wait()? {
                bail!("sshd exited with {}: {}", out.status, sshd.log());
            }
            let listening = ns.cmd(&["ss", "-ltnH", "sport = :22"]).read().unwrap_or_default();
            if !listening.trim().is_empty() {
                break;
            }
            if Instant::now() > deadline {
                bail!("sshd did not listen on port 22 within 10 s: {}", sshd.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // `ip netns exec` and sh exec'd sshd: the same PID.
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", sshd.pid)).unwrap_or_default();
        if comm.trim() != "sshd" {
            bail!("process {} is {comm:?}, not sshd", sshd.pid);
        }
        Ok(sshd)
    }

    fn key(&self) -> String {
        self.dir.join("client_key").display().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// sshd's CPU so far: its own and that of the sessions it reaped, seconds.
    fn cpu(&self) -> f64 {
        stat(self.pid).map(|s| s.own + s.children).unwrap_or(0.0)
    }

    /// Waits until sshd is idle: no process in the namespace but sshd, and nothing waiting in
    /// its listen queues. Processes that are not sshd's sessions (ssh connection masters a
    /// tool left behind) are ended first; their CPU is returned, seconds.
    fn settle(&self, ns: &Netns) -> Result<f64> {
        let stats: Vec<Stat> = ns.pids().into_iter().filter_map(stat).collect();
        let leftovers: Vec<Stat> =
            stats.iter().copied().filter(|s| !descends_from(s, self.pid, &stats)).collect();
        let left_cpu = leftovers.iter().map(|s| s.own + s.children).sum();
        Netns::end(&leftovers.iter().map(|s| s.pid).collect::<Vec<_>>());
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let queued: u64 = ns
                .cmd(&["ss", "-ltnH"])
                .read()
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
            if queued == 0 && ns.pids() == [self.pid] {
                return Ok(left_cpu);
            }
            if Instant::now() > deadline {
                bail!("sshd still busy after 300 s ({} processes in the namespace)", ns.pids().len());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether `s` is `root` or one of its descendants among `all`.
fn descends_from(s: &Stat, root: u32, all: &[Stat]) -> bool {
    let mut current = *s;
    for _ in 0..64 {
        if current.pid == root {
            return true;
        }
        match all.iter().find(|p| p.pid == current.ppid) {
            Some(parent) => current = *parent,
            None => return false,
        }
    }
    false
}

/// The deep-queue setting: sshd's listen queue (128, fixed in sshd) overflows when 1,270
/// connections arrive faster than it accepts them. Spread over 10 listening sockets (nftables
/// redirect inside the namespace, by /25 of the target address: at most 127 each), no SYN is
/// dropped: what 1,270 separate sshds would give the sweep.
#[derive(Debug)]
struct Redirect<'a> {
    ns: &'a Netns,
}

impl<'a> Redirect<'a> {
    fn add(ns: &'a Netns, dir: &Path) -> Result<Self> {
        let mut rules = String::from(
            "table ip cias_bench {\n chain out {\n  type nat hook output priority -100; policy accept;\n",
        );
        for (i, port) in SPREAD_PORTS.enumerate() {
            rules += &format!(
                "  ip daddr 127.0.{}.{}/25 tcp dport 22 redirect to :{port}\n",
                i / 2,
                (i % 2) * 128
            );
        }
        rules += " }\n}\n";
        let file = dir.join("redirect.nft");
        std::fs::write(&file, rules)?;
        ns.cmd(&["nft", "-f", &file.display().to_string()]).run().context("nft -f redirect.nft")?;
        Ok(Self { ns })
    }
}

impl Drop for Redirect<'_> {
    fn drop(&mut self) {
        let _ = self.ns.cmd(&["nft", "delete", "table", "ip", "cias_bench"]).unchecked().run();
    }
}

/// One tool's run.
#[derive(Debug)]
struct Run {
    wall: f64,
    /// User + sys of the tool and its children (GNU time), plus what it left running.
    client_cpu: f64,
    sshd_cpu: f64,
    stdout: String,
}

/// Runs `argv` in the namespace under GNU time and `timeout`, on an idle sshd.
fn measure(ns: &Netns, sshd: &Sshd, dir: &Path, argv: &[String], env: &[(&str, String)]) -> Result<Run> {
    sshd.settle(ns)?;
    let times = dir.join("time.out");
    let _ = std::fs::remove_file(&times);
    let mut full: Vec<String> =
        ["timeout", "-k", "10", &TOOL_LIMIT_SECS.to_string(), "/usr/bin/time", "-f", "%U %S", "-o"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    full.push(times.display().to_string());
    full.extend(argv.iter().cloned());
    let mut cmd = ns.cmd(&full).stdout_capture().stderr_path(dir.join("tool.err")).unchecked();
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let sshd_before = sshd.cpu();
    let start = Instant::now();
    let out = cmd.run()?;
    let wall = start.elapsed().as_secs_f64();
    let left_cpu = sshd.settle(ns)?;
    let sshd_cpu = sshd.cpu() - sshd_before;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.code() == Some(124) {
        bail!("`{}` did not finish within {TOOL_LIMIT_SECS} s", argv.join(" "));
    }
    let text = std::fs::read_to_string(&times).unwrap_or_default();
    let cpu: f64 = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    if text.trim().is_empty() {
        let err = std::fs::read_to_string(dir.join("tool.err")).unwrap_or_default();
        bail!("`{}` ended without a time report ({}): {err}", argv.join(" "), out.status);
    }
    Ok(Run { wall, client_cpu: cpu + left_cpu, sshd_cpu, stdout })
}

/// A `name=value` field of sweep_probe's line (`answered=N targets=N seconds=S workers=N
/// timeout_ms=N`).
fn probe_field<T: std::str::FromStr>(stdout: &str, name: &str) -> Result<T> {
    stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {name} in what sweep_probe said: {stdout:?}"))
}

/// A row of the table for `runs` of the watch's probe.
struct ProbeRow {
    workers: usize,
    timeout_ms: u64,
    answered: Vec<usize>,
    sweep: Vec<f64>,
    wall: Vec<f64>,
    client_cpu: f64,
    sshd_cpu: f64,
}

fn probe(
    ns: &Netns,
    sshd: &Sshd,
    dir: &Path,
    bin: &str,
    extra: &[&str],
    count: usize,
    runs: usize,
) -> Result<ProbeRow> {
    let mut argv = vec![bin.to_string(), "--count".into(), count.to_string()];
    argv.extend(extra.iter().map(|s| s.to_string()));
    let mut row = ProbeRow {
        workers: 0,
        timeout_ms: 0,
        answered: vec![],
        sweep: vec![],
        wall: vec![],
        client_cpu: 0.0,
        sshd_cpu: 0.0,
    };
    for _ in 0..runs {
        let run = measure(ns, sshd, dir, &argv, &[])?;
        row.workers = probe_field(&run.stdout, "workers")?;
        row.timeout_ms = probe_field(&run.stdout, "timeout_ms")?;
        row.answered.push(probe_field(&run.stdout, "answered")?);
        row.sweep.push(probe_field(&run.stdout, "seconds")?);
        row.wall.push(run.wall);
        row.client_cpu += run.client_cpu / runs as f64;
        row.sshd_cpu += run.sshd_cpu / runs as f64;
    }
    Ok(row)
}

fn secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

pub fn run(mode: Mode) -> Result<Report> {
    xtask::prereqs::ensure_packages(&[
        "openssh-server",
        "openssh-client",
        "iproute2",
        "nftables",
        "time",
        "pssh",
        "ansible-core",
    ])?;
    let (profile, subdir) = mode.profile();
    let mut args = vec!["build", "--quiet", "--locked", "-p", "cias-core", "--example", "sweep_probe"];
    args.extend(profile);
    super::cargo(&args)?;
    let probe_bin = super::target_dir().join(subdir).join("examples/sweep_probe").display().to_string();
    let (count, probe_runs) = if mode == Mode::Check { (CHECK_TARGETS, 1) } else { (TARGETS, PROBE_RUNS) };

    let scratch = Scratch(std::env::temp_dir().join(format!("cias-bench-sweep-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)?;
    let dir = scratch.0.as_path();
    let ns = Netns::create()?;
    let sshd = Sshd::start(&ns, dir)?;
    let key = sshd.key();
    // Key login works before anything is measured.
    let mut ssh = vec!["ssh".to_string(), "-i".into(), key.clone()];
    ssh.extend(SSH_OPTIONS.iter().flat_map(|o| ["-o".to_string(), o.to_string()]));
    ssh.extend(["root@127.0.0.1".into(), "echo".into(), "ok".into()]);
    let hello = ns.cmd(&ssh).stderr_to_stdout().unchecked().read()?;
    if hello.trim() != "ok" {
        bail!("ssh root@127.0.0.1 in the namespace said {hello:?}; sshd: {}", sshd.log());
    }

    let hosts = dir.join("hosts");
    std::fs::write(&hosts, (0..count).map(|i| target(i) + "\n").collect::<String>())?;
    let inventory = dir.join("inventory");
    std::fs::write(
        &inventory,
        format!(
            "[all]\n{}[all:vars]\nansible_user=root\nansible_ssh_private_key_file={key}\n\
             ansible_python_interpreter=/usr/bin/python3\n\
             ansible_ssh_common_args='-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR'\n",
            (0..count).map(|i| target(i) + "\n").collect::<String>()
        ),
    )?;

    eprintln!("sweep: the watch's sweep, {probe_runs} run(s), one sshd");
    let plain = probe(&ns, &sshd, dir, &probe_bin, &[], count, probe_runs)?;
    eprintln!("sweep: the watch's sweep, {probe_runs} run(s), sshd's queue spread over 10 sockets");
    let spread = {
        let _redirect = Redirect::add(&ns, dir)?;
        probe(&ns, &sshd, dir, &probe_bin, &[], count, probe_runs)?
    };
    eprintln!("sweep: TCP connect + SSH banner");
    let banner = probe(&ns, &sshd, dir, &probe_bin, &["--banner"], count, 1)?;

    eprintln!("sweep: parallel-ssh -p {PSSH_PARALLEL}");
    let mut pssh_argv: Vec<String> =
        ["parallel-ssh", "-h", &hosts.display().to_string(), "-p", &PSSH_PARALLEL.to_string()]
            .iter()
            .map(|s| s.to_string())
            .collect();
    pssh_argv.extend(["-l".into(), "root".into(), "-O".into(), format!("IdentityFile={key}")]);
    pssh_argv.extend(SSH_OPTIONS.iter().flat_map(|o| ["-O".to_string(), o.to_string()]));
    pssh_argv.push("true".into());
    let pssh = measure(&ns, &sshd, dir, &pssh_argv, &[])?;
    let pssh_ok = pssh.stdout.lines().filter(|l| l.contains("[SUCCESS]")).count();

    eprintln!("sweep: ansible ping -f {ANSIBLE_FORKS}");
    let ansible_argv: Vec<String> = [
        "ansible",
        "all",
        "-i",
        &inventory.display().to_string(),
        "-m",
        "ping",
        "-f",
        &ANSIBLE_FORKS.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let at = |sub: &str| dir.join(sub).display().to_string();
    let ansible_env = [
        ("ANSIBLE_HOST_KEY_CHECKING", "False".to_string()),
        ("ANSIBLE_SSH_CONTROL_PATH_DIR", at("ansible-cp")),
        ("ANSIBLE_LOCAL_TEMP", at("ansible-local")),
        ("ANSIBLE_REMOTE_TEMP", at("ansible-remote")),
        ("ANSIBLE_NOCOLOR", "1".to_string()),
    ];
    let ansible = measure(&ns, &sshd, dir, &ansible_argv, &ansible_env)?;
    let ansible_ok = ansible.stdout.lines().filter(|l| l.contains(" | SUCCESS")).count();
    drop(sshd);
    drop(ns);

    Ok(report(mode, count, probe_runs, &plain, &spread, &banner, (&pssh, pssh_ok), (&ansible, ansible_ok)))
}

#[allow(clippy::too_many_arguments)]
fn report(
    mode: Mode,
    count: usize,
    probe_runs: usize,
    plain: &ProbeRow,
    spread: &ProbeRow,
    banner: &ProbeRow,
    (pssh, pssh_ok): (&Run, usize),
    (ansible, ansible_ok): (&Run, usize),
) -> Report {
    let probe_cells = |row: &ProbeRow| {
        let (sweep_median, sweep_max) = median_max(&mut row.sweep.clone());
        let (wall_median, _) = median_max(&mut row.wall.clone());
        let answered = {
            let (lo, hi) = (row.answered.iter().min().copied(), row.answered.iter().max().copied());
            match (lo, hi) {
                (Some(lo), Some(hi)) if lo == hi => format!("{lo}/{count}"),
                (Some(lo), Some(hi)) => format!("{lo}..{hi}/{count}"),
                _ => "-".into(),
            }
        };
        let runs = if row.sweep.len() > 1 {
            format!("median {} (max {}, {} runs)", secs(sweep_median), secs(sweep_max), row.sweep.len())
        } else {
            secs(sweep_median)
        };
        (answered, runs, wall_median, row.client_cpu, row.sshd_cpu)
    };
    let mut table = String::from(
        "| Tool | Parallel | Answered | Sweep time | Wall (process) | Client CPU | sshd CPU |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let probe_rows = [
        ("Node watch's sweep (`probe_all`, TCP connect to :22), one sshd", plain),
        ("Node watch's sweep, sshd's listen queue spread over 10 sockets", spread),
        ("TCP connect + SSH banner (floor of any real SSH check)", banner),
    ];
    for (name, row) in probe_rows {
        let (answered, runs, wall, client, server) = probe_cells(row);
        table += &format!(
            "| {name} | {} | {answered} | {runs} | {} | {} | {} |\n",
            row.workers,
            secs(wall),
            secs(client),
            secs(server)
        );
    }
    for (name, parallel, run, ok) in [
        ("parallel-ssh `true`", PSSH_PARALLEL, pssh, pssh_ok),
        ("Ansible `ping` module", ANSIBLE_FORKS, ansible, ansible_ok),
    ] {
        table += &format!(
            "| {name} | {parallel} | {ok}/{count} | {} | {} | {} | {} |\n",
            secs(run.wall),
            secs(run.wall),
            secs(run.client_cpu),
            secs(run.sshd_cpu)
        );
    }

    let (plain_median, _) = median_max(&mut plain.wall.clone());
    let (spread_median, _) = median_max(&mut spread.wall.clone());
    let all_plain = plain.answered.iter().all(|&a| a == count);
    let ratio = pssh.wall / plain_median;
    let under_2s = plain_median < 2.0;
    let tenfold = ratio >= 10.0;
    let met = under_2s && tenfold && all_plain;
    let yes_no = |b: bool| if b { "met" } else { "missed" };
    let answered: Vec<String> = plain.answered.iter().map(usize::to_string).collect();
    let (banner_wall, _) = median_max(&mut banner.wall.clone());
    let floor = if banner_wall >= 2.0 {
        format!(
            " This one sshd takes {} to accept {count} connections and send its banner (about \
             {:.0} a second: a fork and exec of sshd each), so no client that gets every \
             connection accepted by it, the watch included, can sweep it in under 2 s here.",
            secs(banner_wall),
            count as f64 / banner_wall
        )
    } else {
        String::new()
    };
    let goals = format!(
        "Goals of issue 17, one sshd, median wall time: the watch's sweep under 2 s with every \
         target answering: **{}** ({}; answered in the {} runs: {}). At least 10x faster than \
         parallel-ssh in the same run: **{}** ({ratio:.1}x: {} against {}).\n\n\
         Where the time goes: with sshd's listen queue spread over 10 sockets the same sweep \
         takes {} and every target answers ({:.0}x faster than parallel-ssh).{floor}",
        yes_no(under_2s && all_plain),
        secs(plain_median),
        answered.len(),
        answered.join(", "),
        yes_no(tenfold),
        secs(pssh.wall),
        secs(plain_median),
        secs(spread_median),
        pssh.wall / spread_median,
    );
    let why = (mode == Mode::Measure && !met).then(|| {
        if !all_plain {
            format!(
                "the watch's sweep of one sshd took {} and found as few as {} of {count} answering: \
                 sshd's listen queue (128, fixed in sshd) overflows, since the sweep's 128 \
                 workers close each connection as soon as it is made, far faster than sshd \
                 accepts them; further SYNs are dropped, and those retransmitted (after 1 s, \
                 then 3 s) after the probe's {} ms timeout count as silent",
                secs(plain_median),
                plain.answered.iter().min().copied().unwrap_or(0),
                plain.timeout_ms
            )
        } else if !under_2s {
            format!(
                "the watch's sweep of one sshd took {}, every target answering: one sshd accepts \
                 connections only so fast (see where the time goes), and connections it has not \
                 accepted wait in its listen queue or for their SYN's retransmission",
                secs(plain_median)
            )
        } else {
            format!("parallel-ssh was only {ratio:.1}x slower")
        }
    });
    let body = format!(
        "{count} targets 127.0.0.1 .. 127.0.{}.{} in a throw-away network namespace (only `lo`, up),\n\
         one OpenSSH sshd on port 22 there (`MaxStartups {MAX_STARTUPS}`; its listen backlog is\n\
         128, fixed in sshd: `net.core.somaxconn` only lowers it; an empty `~/.bashrc` for root's\n\
         sessions). Commands, each inside the namespace:\n\n\
         - watch: `sweep_probe --count {count}` (`crates/cias-core/examples/sweep_probe.rs`:\n  \
           `node_watch::probe_all` with `PROBE_WORKERS` {} and `PROBE_TIMEOUT` {} ms, as\n  \
           `dlll_cias-watch nodes` calls it), {probe_runs} run(s); `--banner` for the floor row\n\
         - spread: the same, with an nftables redirect of port 22 to 10 ports of the same sshd by\n  \
           /25 of the target (at most 127 targets a socket)\n\
         - `parallel-ssh -h HOSTS -p {PSSH_PARALLEL} -l root -O IdentityFile=KEY {} true`\n\
         - `ansible all -i INVENTORY -m ping -f {ANSIBLE_FORKS}` (ansible-core; inventory vars\n  \
           `ansible_user=root`, the key, `ansible_python_interpreter=/usr/bin/python3`, known hosts\n  \
           /dev/null; `ANSIBLE_HOST_KEY_CHECKING=False`; otherwise defaults: ControlPersist 60 s,\n  \
           no pipelining)\n\n\
         Sweep time: the probe's own time for the sweep (in the process), else the wall time.\n\
         Wall (process): spawn to exit of the command. Client CPU: user + sys of the command and\n\
         its children (GNU time), plus ssh connection masters it left running. sshd CPU: what\n\
         sshd and the sessions it ran used for the same work. Both share the machine's cores.\n\n\
         {table}\n{goals}\n",
        (count - 1) / 254,
        (count - 1) % 254 + 1,
        plain.workers,
        plain.timeout_ms,
        SSH_OPTIONS.map(|o| format!("-O {o}")).join(" "),
    );
    Report { title: "Fleet liveness sweep: 1,270 targets on loopback", body, missed: why }
}
