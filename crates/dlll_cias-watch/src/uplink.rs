//! `dlll_cias-watch uplink`: the look every 3 minutes, the administrator's cancel, and the
//! power-off the timer runs at the deadline. Decisions are `cias_core::uplink`'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cias_core::handover;
use cias_core::host::{holds_address, Command, Host};
use cias_core::members::{self, host_of};
use cias_core::netplan::vmid::ROUTER_VMID;
use cias_core::paths;
use cias_core::settings::ClusterSettings;
use cias_core::state_file::StateFile;
use cias_core::takeover::ClusterView;
use cias_core::uplink::{self, Look, Step, Uplink};

/// What the administrator asked of the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Look,
    Cancel,
    Probe,
    PowerOff,
}

/// How long a VM has to shut down cleanly before it is stopped.
const VM_SHUTDOWN_LIMIT: Duration = Duration::from_secs(180);
/// The mail condition while the uplink is lost.
const CONDITION: &str = "uplink-lost";

pub fn run(local: &Arc<dyn Host>, ask: Ask) -> Result<String> {
    let host = local.as_ref();
    let settings = ClusterSettings::load(&paths::default_settings_file())?;
    let targets = settings.uplink_targets();
    if ask == Ask::Probe {
        return match uplink::any_answers(host, &targets)? {
            true => Ok(format!("the uplink answers ({})", uplink::targets_text(&targets))),
            false => bail!("none of {} answers", uplink::targets_text(&targets)),
        };
    }
    let file = Uplink::file();
    let state = Uplink::load(&file);
    let (next, step) = match ask {
        Ask::Cancel => uplink::hold(&state),
        _ => {
            let look = Look {
                answered: uplink::any_answers(host, &targets)?,
                router_running: router_running(host),
                // The power-off run is the pending power-off itself.
                pending: ask == Ask::PowerOff || uplink::pending(host)?,
                now: cias_core::clock::unix_secs(),
            };
            if ask == Ask::PowerOff && uplink::still_due(&state, &look) {
                return power_off(local, &settings, &state);
            }
            uplink::decide(
                &state,
                &look,
                Duration::from_secs(u64::from(settings.uplink.shutdown_after_mins) * 60),
            )
        }
    };
    if next != state {
        next.save(&file).with_context(|| format!("cannot write {}", file.display()))?;
    }
    act(host, &settings, &targets, &step)
}

/// Carries out a step of the look (or the cancel); returns the outcome for the journal.
fn act(
    host: &dyn Host,
    settings: &ClusterSettings,
    targets: &[std::net::Ipv4Addr],
    step: &Step,
) -> Result<String> {
    let node = host.name();
    match step {
        Step::Keep(why) => Ok(why.clone()),
        Step::Schedule { since, at, again } => {
            if *again {
                // A timer left from before (a hand-stopped one) would make a second.
                host.execute(&uplink::cancel_command())?;
            }
            host.run(&uplink::schedule_command(cias_core::clock::unix_secs(), *at))?;
            let message = uplink::scheduled_message(node, targets, *since, *at);
            tracing::warn!("{message}");
            wall(host, &message);
            cias_core::notify::alert(
                settings,
                CONDITION,
                &format!("DLLL-CIAS: {node} has no uplink and powers off at {}", uplink::utc(*at)),
                &message,
            );
            Ok(format!("power-off scheduled at {}", uplink::utc(*at)))
        }
        Step::Cancel { why } => {
            // After a reboot there is no timer left to stop: that is fine.
            host.execute(&uplink::cancel_command())?;
            let message = format!("DLLL-CIAS: the power-off of {node} is cancelled: {why}.");
            tracing::warn!("{message}");
            wall(host, &message);
            cias_core::notify::alert_over(CONDITION);
            cias_core::notify::tell_admin(settings, &format!("DLLL-CIAS: {node} stays up"), &message);
            Ok(format!("power-off cancelled: {why}"))
        }
        Step::Back { down_for } => {
            let message = format!(
                "the uplink of {node} answers again, after {}",
                cias_core::node_watch::span(*down_for)
            );
            tracing::info!("{message}");
            cias_core::notify::alert_over(CONDITION);
            cias_core::notify::tell_admin(
                settings,
                &format!("DLLL-CIAS: {node} has its uplink back"),
                &message,
            );
            Ok(message)
        }
    }
}

/// At the deadline: the master hands its role over (or, when no other node reaches the
/// uplink, keeps the storage up until the others' VMs have stopped), this node's VMs are
/// stopped cleanly, and it powers off.
fn power_off(local: &Arc<dyn Host>, settings: &ClusterSettings, state: &Uplink) -> Result<String> {
    let host = local.as_ref();
    let node = host.name().to_string();
    wall(host, &format!("DLLL-CIAS: {node} still has no uplink: its VMs are stopped and it powers off now."));
    let vip = settings.internal.master_vip.to_string();
    let since = match state {
        Uplink::Lost { since, .. } => uplink::utc(*since),
        _ => "just now".into(),
    };
    let mut report = vec![format!("{node} has had no uplink since {since}; it powers off.")];
    let master = holds_address(host, &vip)?;
    let successor = if master { successor(local) } else { None };
    if let Some(to) = &successor {
        report.push(hand_over(local, to, &vip));
    }
    report.push(stop_vms(host).unwrap_or_else(|e| {
        // Proxmox still stops every guest as the node shuts down (pve-guests.service).
        tracing::error!("cannot list this node's VMs to shut them down: {e:#}");
        format!("this node's VMs could not be listed ({e:#}): Proxmox stops them as the node shuts down")
    }));
    if master && successor.is_none() {
        report.push(wait_for_others(host));
    }
    let text = report.join("\n");
    tracing::warn!("{text}");
    cias_core::notify::tell_admin(settings, &format!("DLLL-CIAS: {node} powers off (no uplink)"), &text);
    host.run(&Command::from_argv(&["systemctl", "poweroff"]))?;
    Ok("powering off".into())
}

/// The online node that may be master, highest priority first, whose uplink answers.
fn successor(local: &Arc<dyn Host>) -> Option<String> {
    let view = members::view(local.as_ref()).ok()?;
    let online = view.online();
    let mut candidates: Vec<(u8, String)> = members::priorities(&view)
        .into_iter()
        .filter(|(n, priority)| *priority > 0 && n != local.name() && online.contains(n.as_str()))
        .map(|(n, priority)| (priority, n))
        .collect();
    candidates.sort_by(|a, b| b.cmp(a));
    let probe =
        Command::query_argv(&["dlll_cias-watch", "uplink", "--probe"]).timeout(Duration::from_secs(30));
    candidates
        .into_iter()
        .find(|(_, n)| {
            let reaches =
                host_of(local, &view, n).is_some_and(|h| h.execute(&probe).is_ok_and(|o| o.success()));
            if !reaches {
                tracing::info!("{n} does not reach the uplink either: not a successor");
            }
            reaches
        })
        .map(|(_, n)| n.to_string())
}

/// The manual switch on `to`; a failure is reported and the power-off goes on (keepalived
/// stops with this node, and the takeover follows).
fn hand_over(local: &Arc<dyn Host>, to: &str, vip: &str) -> String {
    let done = members::view(local.as_ref())
        .map_err(anyhow::Error::from)
        .and_then(|view| host_of(local, &view, to).context(format!("no address for {to}")))
        .and_then(|target| Ok(target.run(&handover::switch_command())?))
        .and_then(|_| Ok(handover::wait_gone(local.as_ref(), vip)?));
    match done {
        Ok(()) => format!("master role and router (VM {ROUTER_VMID}) handed over to {to}"),
        Err(e) => {
            tracing::error!("cannot hand the master role over to {to}: {e:#}");
            format!("the master role could not be handed over to {to} ({e:#}): the takeover follows the power-off")
        }
    }
}

/// Every VM running here shut down cleanly, all at once (`qm shutdown --forceStop 1`: one
/// that has not stopped after [`VM_SHUTDOWN_LIMIT`] is stopped).
fn stop_vms(host: &dyn Host) -> Result<String> {
    let view = members::view(host)?;
    let running: Vec<u32> = running_on(&view, |n| n == host.name()).map(|v| v.vmid).collect();
    if running.is_empty() {
        return Ok("no VM was running here".into());
    }
    let limit = VM_SHUTDOWN_LIMIT.as_secs().to_string();
    let results: Vec<(u32, Result<(), String>)> = std::thread::scope(|s| {
        let stops: Vec<_> = running
            .iter()
            .map(|&vmid| {
                let cmd = Command::from_argv(&[
                    "qm",
                    "shutdown",
                    &vmid.to_string(),
                    "--timeout",
                    &limit,
                    "--forceStop",
                    "1",
                ])
                .timeout(VM_SHUTDOWN_LIMIT + Duration::from_secs(60));
                s.spawn(move || (vmid, host.run(&cmd).map(|_| ()).map_err(|e| e.to_string())))
            })
            .collect();
        stops.into_iter().map(|h| h.join().expect("a stop does not panic")).collect()
    });
    let mut lines = Vec::new();
    for (vmid, result) in results {
        match result {
            Ok(()) => lines.push(format!("VM {vmid} shut down")),
            Err(e) => {
                tracing::error!("VM {vmid} did not shut down: {e}");
                lines.push(format!("VM {vmid} did not shut down ({e})"));
            }
        }
    }
    Ok(lines.join("\n"))
}

/// The master with no successor powers off last: it keeps MooseFS up while VMs still run on
/// other nodes (their disks are on it), at most [`handover::LIMIT`].
fn wait_for_others(host: &dyn Host) -> String {
    let deadline = Instant::now() + handover::LIMIT;
    loop {
        let others: Vec<u32> = match members::view(host) {
            Ok(view) => running_on(&view, |n| n != host.name()).map(|v| v.vmid).collect(),
            Err(e) => return format!("cannot see the other nodes' VMs ({e}): not waiting for them"),
        };
        if others.is_empty() {
            return "no VM runs on another node: this master powers off last".into();
        }
        if Instant::now() > deadline {
            return format!(
                "VMs {others:?} still run on other nodes after {}s: powering off anyway",
                handover::LIMIT.as_secs()
            );
        }
        tracing::info!("no other node reaches the uplink; waiting for VMs {others:?} on other nodes to stop");
        std::thread::sleep(Duration::from_secs(10));
    }
}

/// Running VMs on online nodes that `node` accepts.
fn running_on<'a>(
    view: &'a ClusterView,
    node: impl Fn(&str) -> bool + 'a,
) -> impl Iterator<Item = &'a cias_core::proxmox::pvesh::VmResource> + 'a {
    let online = view.online();
    view.vms.iter().filter(move |v| {
        v.kind == "qemu" && v.status == "running" && node(&v.node) && online.contains(v.node.as_str())
    })
}

/// Whether the router runs anywhere; `None` when the cluster cannot tell (no quorum).
fn router_running(host: &dyn Host) -> Option<bool> {
    let view = members::view(host).ok()?;
    view.quorate.then(|| view.vm(ROUTER_VMID).is_some_and(|v| v.status == "running"))
}

/// Tells everyone logged in on this node; a failure only goes to the journal.
fn wall(host: &dyn Host, message: &str) {
    if let Err(e) = host.run(&Command::from_argv(&["wall"]).stdin_data(format!("{message}\n"))) {
        tracing::warn!("cannot send the wall message: {e}");
    }
}
