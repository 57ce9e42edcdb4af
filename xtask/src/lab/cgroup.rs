//! One cgroup per lab member (each node, the SMTP server). The lab finds, counts and kills its
//! processes only through these, never by name: other programs on the machine share the names.
//!
//! Hosts here are "hybrid": cgroup v2 at /sys/fs/cgroup/unified (it has `cgroup.kill`) next to
//! the v1 `name=systemd` hierarchy, where nspawn (with `--keep-unit`) builds its subtree under
//! the caller's cgroup. So a member's first process joins both before anything else starts.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::run::Cmd;

const LAB: &str = "cias-lab";

/// The cgroup v2 mount: the unified hierarchy of a hybrid host, or /sys/fs/cgroup itself.
fn v2_root() -> PathBuf {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        PathBuf::from("/sys/fs/cgroup/unified")
    }
}

/// Every hierarchy a member joins: v2, plus v1 `name=systemd` on hybrid hosts.
fn roots() -> Vec<PathBuf> {
    let mut roots = vec![v2_root()];
    let v1 = PathBuf::from("/sys/fs/cgroup/systemd");
    if v1.join("cgroup.procs").exists() && roots[0] != Path::new("/sys/fs/cgroup") {
        roots.push(v1);
    }
    roots
}

/// The cgroup of one lab member, e.g. `node1` or `mail`.
#[derive(Debug, Clone)]
pub struct Group {
    name: String,
}

impl Group {
    pub fn new(name: &str) -> Group {
        Group { name: name.into() }
    }

    /// Every lab cgroup that exists now (also after a crash).
    pub fn all() -> Result<Vec<Group>> {
        let dir = v2_root().join(LAB);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut groups = Vec::new();
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                groups.push(Group::new(&entry.file_name().to_string_lossy()));
            }
        }
        Ok(groups)
    }

    fn dirs(&self) -> Vec<PathBuf> {
        roots().into_iter().map(|r| r.join(LAB).join(&self.name)).collect()
    }

    fn v2_dir(&self) -> PathBuf {
        v2_root().join(LAB).join(&self.name)
    }

    /// Creates the cgroup in every hierarchy.
    pub fn create(&self) -> Result<()> {
        for dir in self.dirs() {
            fs::create_dir_all(&dir)
                .with_context(|| format!("cgroup {}: cannot create {}", self.name, dir.display()))?;
        }
        Ok(())
    }

    /// Wraps `command` so that it joins this cgroup (in every hierarchy) before it `exec`s, and,
    /// with `restart_on_reboot`, starts it again whenever it exits with 133: that is how
    /// `systemd-nspawn` reports a `reboot` inside the container.
    pub fn wrap(&self, command: &[String], restart_on_reboot: bool) -> Cmd {
        let procs: Vec<String> =
            self.dirs().iter().map(|d| d.join("cgroup.procs").display().to_string()).collect();
        let run = if restart_on_reboot {
            r#"while :; do "$@"; rc=$?; [ "$rc" -eq 133 ] || exit "$rc"; done"#
        } else {
            r#"exec "$@""#
        };
        let script = format!(r#"for f in $CIAS_LAB_CGROUPS; do echo $$ > "$f" || exit 1; done; {run}"#);
        let mut argv = vec!["sh".to_string(), "-c".into(), script, "sh".into()];
        argv.extend(command.iter().cloned());
        super::run::cmd(argv).env("CIAS_LAB_CGROUPS", &procs.join(" "))
    }

    /// Starts `command` detached (it outlives this process) inside this cgroup, output to `log`;
    /// returns once it has joined the cgroup, so a check for "still running" cannot race it.
    pub fn spawn(&self, command: &[String], restart_on_reboot: bool, log: &Path) -> Result<()> {
        self.create()?;
        self.wrap(command, restart_on_reboot).spawn_detached(log)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.populated() {
            if Instant::now() > deadline {
                let output = fs::read_to_string(log).unwrap_or_default();
                bail!("cgroup {}: `{}` did not start: {output}", self.name, command.join(" "));
            }
            sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// True while any process lives in the cgroup or below it.
    pub fn populated(&self) -> bool {
        fs::read_to_string(self.v2_dir().join("cgroup.events"))
            .map(|events| events.lines().any(|l| l == "populated 1"))
            .unwrap_or(false)
    }

    /// Every process in the cgroup and below it.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        collect_pids(&self.v2_dir(), &mut pids);
        pids
    }

    /// Kills every process at once (a pulled plug) and waits until they are gone.
    pub fn kill(&self) -> Result<()> {
        let kill_file = self.v2_dir().join("cgroup.kill");
        if !kill_file.exists() {
            return Ok(());
        }
        fs::write(&kill_file, "1")
            .with_context(|| format!("cgroup {}: cannot write {}", self.name, kill_file.display()))?;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(15);
        while self.populated() {
            if started.elapsed() > Duration::from_secs(1) {
                // A process blocked in a FUSE request of the node's own mfsmount (killed with
                // it) never dies: abort those connections, as the power cut would have.
                self.pids().iter().for_each(|&pid| abort_fuse_of(pid));
            }
            if Instant::now() > deadline {
                bail!("cgroup {}: processes {:?} survive cgroup.kill", self.name, self.pids());
            }
            sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Kills what is left and removes the cgroup and its children from every hierarchy.
    pub fn remove(&self) -> Result<()> {
        self.kill()?;
        for dir in self.dirs() {
            remove_tree(&dir)
                .with_context(|| format!("cgroup {}: cannot remove {}", self.name, dir.display()))?;
        }
        Ok(())
    }
}

/// Removes the lab's parent cgroups once every member is gone.
pub fn remove_lab_root() -> Result<()> {
    for root in roots() {
        remove_tree(&root.join(LAB))?;
    }
    Ok(())
}

/// True if anything of the lab is left in any cgroup hierarchy (for `down`'s self-check).
pub fn lab_cgroups_left() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path().join(LAB))
        .chain([PathBuf::from("/sys/fs/cgroup").join(LAB)])
        .filter(|p| p.exists())
        .collect()
}

fn collect_pids(dir: &Path, pids: &mut Vec<u32>) {
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(procs.lines().filter_map(|l| l.parse::<u32>().ok()));
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_pids(&entry.path(), pids);
            }
        }
    }
}

/// cgroup directories can only be removed with `rmdir`, children first.
fn remove_tree(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path())?;
        }
    }
    fs::remove_dir(dir).with_context(|| format!("rmdir {}", dir.display()))
}

/// Aborts the FUSE connections of the file systems mounted in `pid`'s mount namespace.
fn abort_fuse_of(pid: u32) {
    let connections = Path::new("/sys/fs/fuse/connections");
    if fs::read_dir(connections).map(|mut d| d.next().is_none()).unwrap_or(true) {
        let _ = super::run::cmd(["mount", "-t", "fusectl", "fusectl", "/sys/fs/fuse/connections"]).run();
    }
    let Ok(mountinfo) = fs::read_to_string(format!("/proc/{pid}/mountinfo")) else { return };
    for line in mountinfo.lines() {
        let Some((head, tail)) = line.split_once(" - ") else { continue };
        if !tail.starts_with("fuse") {
            continue;
        }
        if let Some(minor) =
            head.split_whitespace().nth(2).and_then(|dev| dev.split_once(':')).map(|(_, m)| m)
        {
            let _ = fs::write(format!("/sys/fs/fuse/connections/{minor}/abort"), "1");
        }
    }
}
