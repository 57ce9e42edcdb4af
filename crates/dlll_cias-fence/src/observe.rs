//! What the reconcile loop sees on one tick. Every question has a short timeout, and any
//! failure to ask reads as the worse answer (not quorate, not serving).

use std::path::Path;
use std::time::Duration;

use cias_core::clock::boot_ms;
use cias_core::host::{holds_address, port_open, Command, Host};
use cias_core::journal::RunLock;
use cias_core::majority::Takeover;
use cias_core::mfs_metadata::DATA_PATH;
use cias_core::paths::HANDOVER_MARK;
use cias_core::proxmox::pvesh::{self, ClusterStatusEntry};
use cias_core::reconcile::{Master, Observed};
use cias_core::settings::ClusterSettings;

const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Longer than a manual switch can take: the old master's clean stop may take up to its
/// 300 s limit on a large namespace (lab: the whole switch 13-22 s).
const HANDOVER_LIMIT: Duration = Duration::from_secs(360);

/// Whether this node is quorate, and the members of its partition. Any failure to ask counts
/// as "not quorate": a node that cannot tell must assume the worst.
pub fn quorum(host: &dyn Host) -> (bool, Vec<String>) {
    let cmd = pvesh::get_json("/cluster/status").timeout(QUERY_TIMEOUT);
    let Ok(out) = host.run(&cmd) else { return (false, vec![]) };
    let Ok(entries) = pvesh::parse::<Vec<ClusterStatusEntry>>("pvesh get /cluster/status", &out.stdout)
    else {
        return (false, vec![]);
    };
    let (quorate, online) = pvesh::partition(&entries);
    (quorate, online.into_iter().map(str::to_string).collect())
}

/// keepalived's main pid while it runs (systemd's `MainPID`, 0 when it does not).
fn keepalived_pid(host: &dyn Host) -> Option<u32> {
    let cmd = Command::query_argv(&["systemctl", "show", "--property=MainPID", "--value", "keepalived"]);
    let pid = host.execute(&cmd.timeout(QUERY_TIMEOUT)).ok()?.stdout.trim().parse().ok()?;
    (pid != 0).then_some(pid)
}

/// Whether a manual switch marked this master as handing its metadata over, recently enough
/// ([`HANDOVER_MARK`] younger than [`HANDOVER_LIMIT`]: a switch that died does not leave
/// the master stopped for good).
fn handing_over() -> bool {
    modified_within(HANDOVER_MARK, HANDOVER_LIMIT)
}

fn recently_written(file: &str) -> bool {
    modified_within(file, Duration::from_secs(10))
}

/// Whether `file` was written less than `limit` ago (a missing file was not).
pub fn modified_within(file: &str, limit: Duration) -> bool {
    std::fs::metadata(file).and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age < limit))
}

/// Whether MooseFS's data directory holds a non-empty file `which` picks.
fn has_file(which: impl Fn(&str) -> bool) -> bool {
    let Ok(entries) = std::fs::read_dir(DATA_PATH) else { return false };
    entries
        .flatten()
        .any(|e| e.file_name().to_str().is_some_and(&which) && e.metadata().is_ok_and(|m| m.len() > 0))
}

/// One look at this node; also returns the members of its partition.
pub fn observe(host: &dyn Host, settings: &ClusterSettings, node: &str) -> (Observed, Vec<String>) {
    let (quorate, online) = quorum(host);
    let setup_running = RunLock::holder(Path::new(cias_core::paths::SETUP_LOCK)).is_some();
    let install =
        cias_core::installed::progress(Path::new(cias_core::paths::MANAGEMENT_DIR), node, setup_running);
    let keepalived = keepalived_pid(host);
    // mfsmaster before the VIP: a takeover starts it only after the VIP arrived, so "running,
    // then no VIP" really is a master without the VIP.
    let runs = crate::repair::master_runs(host).unwrap_or(true);
    let vip = settings.internal.master_vip.to_string();
    let holds_vip = holds_address(host, &vip).unwrap_or(false);
    let master = match (runs, holds_vip && port_open(host, &vip, 9421).unwrap_or(false)) {
        (false, _) => Master::Stopped,
        (true, false) => Master::Running,
        (true, true) => Master::Serving,
    };
    let takeover_running = RunLock::holder(Path::new(cias_core::paths::TAKEOVER_LOCK)).is_some();
    let handing_over = handing_over();
    let observed = Observed {
        now_ms: boot_ms(),
        quorate,
        automatic_takeover: Takeover::read(host).is_none_or(Takeover::automatic),
        install,
        keepalived,
        holds_vip,
        master,
        takeover_running,
        handing_over,
        master_has_base: has_file(|name| name == "metadata.mfs.back"),
        // A download in progress (`metadata_ml.tmp`, renamed at its end) counts: restarting
        // the metalogger then would only start it over.
        metalogger_has_base: has_file(|name| name.starts_with("metadata_ml.mfs.back"))
            || recently_written(&format!("{DATA_PATH}/metadata_ml.tmp")),
    };
    (observed, online)
}
