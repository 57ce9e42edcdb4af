//! `dlll_cias-watch nodes`: the quorate master looks at every member once, remembers the silent
//! ones on shared storage and removes those silent past the timer (the decisions are
//! `cias_core::node_watch`'s; this file runs them and tells the administrator).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cias_core::host::{holds_address, is_mounted, Command, Host};
use cias_core::journal::{JournalError, RunLock};
use cias_core::node_watch::{self, span, Failures, Finding, Member, PROBE_PORT, PROBE_TIMEOUT};
use cias_core::notify::tell_admin;
use cias_core::paths;
use cias_core::proxmox::pvesh::{self, ClusterStatusEntry};
use cias_core::settings::ClusterSettings;
use cias_core::state_file::StateFile;

/// A removal recovers the node's VMs elsewhere: give it time, but never hang the watch.
const REMOVAL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub fn run(host: &dyn Host, me: &str) -> Result<String> {
    let settings = ClusterSettings::load(&paths::default_settings_file())?;
    if !holds_address(host, &settings.internal.master_vip.to_string())? {
        return Ok(crate::NOT_MASTER.into());
    }
    let status = host.run(&pvesh::get_json("/cluster/status"))?.stdout;
    let entries: Vec<ClusterStatusEntry> = pvesh::parse("pvesh get /cluster/status", &status)?;
    if !pvesh::partition(&entries).0 {
        // Cut off: the majority's master decides, this one may be the lost node.
        return Ok("this node is outside the quorate partition: no node is checked".into());
    }
    // A removal can take many minutes; the looks cron starts meanwhile leave it alone.
    let _lock = match RunLock::acquire(&Path::new(paths::STATE_DIR).join("watch-nodes.lock")) {
        Err(JournalError::Busy { .. }) => return Ok("the previous check is still under way".into()),
        lock => lock?,
    };
    cias_core::logging::also_to_file(&paths::node_dir(me).join("watch.log"))?;
    // The timers live there; without it a new master would start them over (or a local file
    // would hide under the mount point).
    if !is_mounted(host, paths::MFS_MOUNT)? {
        bail!(
            "{} is not mounted: the node check keeps its state there; nothing was checked",
            paths::MFS_MOUNT
        );
    }

    let members = node_watch::members(&entries);
    let started = Instant::now();
    let answered = node_watch::look(&members, me, probe);
    let looked = started.elapsed();
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let remove_after = settings.watch.node_removal();
    let file = Failures::file();
    let mut failures = Failures::load(&file);
    let findings = failures.sweep(&names, &answered, me, cias_core::clock::unix_secs(), remove_after);
    save(&failures, &file)?;
    if !findings.is_empty() || !failures.nodes.is_empty() {
        tracing::info!(
            "{} of {} members answered on port {} ({:.1}s)",
            answered.len(),
            names.len(),
            PROBE_PORT,
            looked.as_secs_f64()
        );
    }
    for finding in &findings {
        match finding {
            Finding::Back { .. } | Finding::Left { .. } => tracing::info!("{finding}"),
            _ => tracing::warn!("{finding}"),
        }
    }

    let silent: Vec<&str> = findings
        .iter()
        .filter_map(|f| match f {
            Finding::FirstFailure { node } => Some(node.as_str()),
            _ => None,
        })
        .collect();
    if !silent.is_empty() {
        let body = format!(
            "{} did not accept a connection on port {} (SSH) within {}, checked by the master {me} \
             (every 5 minutes; a node whose sshd is down counts as silent too).\n\n\
             A node silent for {} (watch.node_removal_secs in {}) is removed from the cluster with \
             dlll_cias-remove-node: its VMs are recovered on other nodes and it leaves the Proxmox \
             cluster. That happens at the first check after the timer, and only while more than half \
             of the members answer. If it answers again before, nothing is done.\n\n\
             State: {}; log: {}",
            silent.join(", "),
            PROBE_PORT,
            span(PROBE_TIMEOUT),
            span(remove_after),
            paths::default_settings_file().display(),
            file.display(),
            paths::node_dir(me).join("watch.log").display(),
        );
        let verb = if silent.len() == 1 { "does" } else { "do" };
        tell_admin(&settings, &format!("DLLL-CIAS: {} {verb} not answer", named(&silent)), &body);
    }
    for finding in &findings {
        match finding {
            Finding::Remove { node, failed_for } => {
                remove(host, &settings, &members, &mut failures, &file, node, *failed_for)?
            }
            Finding::RemovalRefused { nodes, why } => {
                let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
                let body = format!(
                    "{}: silent for {} or longer and due for removal, but {why}.\n\n\
                     Removing now could leave a cluster that exists only on this side of a broken \
                     link, or remove half of the nodes after a power cut took them at once. The \
                     removal happens once more than half of the members answer again. If the nodes \
                     are gone for good, bring enough others up, or remove them by hand \
                     (dlll_cias-remove-node NODE).\n\n\
                     You are told once per node; the check goes on every 5 minutes (log: {}).",
                    named(&nodes),
                    span(remove_after),
                    paths::node_dir(me).join("watch.log").display(),
                );
                tell_admin(
                    &settings,
                    &format!("DLLL-CIAS: not removing {}: no majority answers", named(&nodes)),
                    &body,
                );
            }
            _ => {}
        }
    }
    Ok(format!("{} of {} members answered", answered.len(), members.len()))
}

/// Removes `node` with `dlll_cias-remove-node` (which mails its own report when it succeeds);
/// a refusal or a failure is told once, and the next look tries again.
fn remove(
    host: &dyn Host,
    settings: &ClusterSettings,
    members: &[Member],
    failures: &mut Failures,
    file: &Path,
    node: &str,
    failed_for: Duration,
) -> Result<()> {
    // An earlier removal of this look may have taken many minutes: a node that answers now
    // must not be removed (the removal would move its VMs away and power it off).
    let address = members.iter().find(|m| m.name == node).and_then(|m| m.address);
    if address.is_some_and(|ip| !probe(&[(node.to_string(), ip)]).is_empty()) {
        tracing::info!("{node} answers again: not removed (the next look forgets it)");
        return Ok(());
    }
    let tool = format!("{}/dlll_cias-remove-node", paths::BIN_DIR);
    let cmd = Command::from_argv(&[&tool, "--yes", node]).timeout(REMOVAL_TIMEOUT);
    tracing::info!("running {cmd}");
    let (outcome, detail) = match host.execute(&cmd) {
        Ok(out) if out.success() => {
            tracing::info!("{node} removed (dlll_cias-remove-node mails its report)");
            return Ok(());
        }
        Ok(out) if out.code == Some(3) => ("was refused", out.stderr.trim().to_string()),
        Ok(out) => {
            let status = out.code.map_or("a signal".to_string(), |c| format!("exit status {c}"));
            ("failed", format!("{status} - {}", out.stderr.trim()))
        }
        Err(e) => ("failed", e.to_string()),
    };
    tracing::error!("removing {node} {outcome}: {detail}");
    if failures.removal_failed(node) {
        save(failures, file)?;
        let body = format!(
            "{node} has been silent for {}, and `{cmd}` {outcome}:\n\n{detail}\n\n\
             The check tries again every 5 minutes; you are told once. Log: {}",
            span(failed_for),
            paths::node_dir(host.name()).join("watch.log").display(),
        );
        tell_admin(settings, &format!("DLLL-CIAS: removing node {node} {outcome}"), &body);
    }
    Ok(())
}

/// The names among `targets` that answer (see `cias_core::node_watch`).
fn probe(targets: &[(String, IpAddr)]) -> BTreeSet<String> {
    node_watch::probe_all(targets, PROBE_PORT, PROBE_TIMEOUT, node_watch::PROBE_WORKERS)
}

fn save(failures: &Failures, file: &Path) -> Result<()> {
    failures.save(file).with_context(|| format!("cannot write {}", file.display()))
}

/// "node pve2", "nodes pve2, pve3", or "7 nodes" when a list would not fit a subject.
fn named(nodes: &[&str]) -> String {
    match nodes {
        [one] => format!("node {one}"),
        few if few.len() <= 4 => format!("nodes {}", few.join(", ")),
        many => format!("{} nodes", many.len()),
    }
}
