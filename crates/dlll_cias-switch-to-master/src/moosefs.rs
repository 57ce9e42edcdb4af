//! MooseFS promotion (SPEC section 7): the new master starts `mfsmaster` on the files its
//! own metalogger kept (the unit runs `mfsmaster -a`, which picks the newest metadata and
//! replays the changelogs), never on fresh metadata, which chunkservers would refuse. A manual
//! switch first takes the old master's final metadata (written when it stops cleanly), so not
//! even the metalogger's last second of changes is lost.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cias_core::clock::boot_ms;
use cias_core::fence::LastSeen;
use cias_core::host::{clear_mark, is_mounted, port_open, set_mark, Command, Host};
use cias_core::mfs_metadata::{
    data_files, is_metalogger_file, master_runs, master_state_command, master_state_runs, move_into,
    newest_version_command, newest_version_command_in, parse_newest_version, DATA_PATH,
};
use cias_core::paths::HANDOVER_MARK;
use cias_core::reconcile::MASTER_FENCE_BOUND;
use cias_core::state_file::StateFile;

use crate::{Ctx, Peer};
use cias_core::timeline::Timeline;
/// The master's metadata file in `DATA_PATH`.
const METADATA: &str = "/var/lib/mfs/metadata.mfs";
/// `mfsmaster stop` takes ~4 s (measured); a big namespace takes longer to dump.
const STOP_LIMIT: Duration = Duration::from_secs(300);

fn active(ctx: &Ctx, unit: &str) -> Result<bool> {
    Ok(ctx.host.execute(&Command::query_argv(&["systemctl", "is-active", "--quiet", unit]))?.success())
}

/// Whether this node's mfsmaster is not running yet.
pub fn needs_promotion(ctx: &Ctx) -> Result<bool> {
    Ok(!active(ctx, "moosefs-master")?)
}

/// The newest metadata version `host` holds (0: none).
fn newest_version(host: &dyn Host) -> Result<u64> {
    Ok(parse_newest_version(&host.run(&newest_version_command())?.stdout).unwrap_or(0))
}

/// How long the takeover waits for the other nodes to say how new their copy is: a node that
/// just died may still be listed online, and its SSH connection would hang.
const ASK_LIMIT: Duration = Duration::from_millis(1500);

/// How long a quorate node that still runs an mfsmaster gets to stop it: its reconcile loop
/// stops an mfsmaster without the VIP within a second or two.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// What the other quorate nodes said, asked in parallel, one SSH round each.
struct Survey {
    /// When the takeover asked (boot clock).
    asked_ms: u64,
    /// The peers that answered, with their answer ([`newest_version_command`]).
    answers: Vec<(Peer, String)>,
    /// The online nodes that did not answer in time: they may run anything.
    silent: Vec<String>,
}

fn survey(ctx: &Ctx, tl: &mut Timeline) -> Result<Survey> {
    let asked_ms = boot_ms();
    let view = ctx.view()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut silent: Vec<String> = vec![];
    for name in view.online().into_iter().filter(|n| *n != ctx.node) {
        let peer = ctx.peer(name, &view)?;
        let tx = tx.clone();
        silent.push(name.to_string());
        std::thread::spawn(move || {
            let answer = peer.host.run(&newest_version_command()).map(|o| o.stdout);
            let _ = tx.send((peer, answer));
        });
    }
    let deadline = Instant::now() + ASK_LIMIT;
    let mut answers = vec![];
    while !silent.is_empty() {
        let Ok((peer, answer)) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            break;
        };
        silent.retain(|n| n != peer.name());
        match answer {
            Ok(text) => answers.push((peer, text)),
            Err(e) => {
                tl.note(&format!("cannot ask {} about its MooseFS metadata - {e:#}", peer.name()));
                silent.push(peer.name().to_string());
            }
        }
    }
    if !silent.is_empty() {
        tl.note(&format!("no answer in time from {}: counted as lost", silent.join(", ")));
    }
    Ok(Survey { asked_ms, answers, silent })
}

/// Makes sure this node starts from the newest copy in the quorate partition: when another
/// node's metalogger is ahead of this one's (this one was reconnecting, or started over after
/// a split brain), that node's metalogger files are fetched here first. A peer may move its
/// files aside while they are fetched (its loop demotes a former master): a copy that is not
/// newer than this node's own is dropped and the next newest peer tried; when none is, this
/// node starts from its own copy, and says so.
fn take_newer_copy(ctx: &Ctx, tl: &mut Timeline, survey: &Survey) -> Result<()> {
    let mine = newest_version(ctx.host.as_ref())?;
    let mut newer: Vec<(&Peer, u64)> = survey
        .answers
        .iter()
        .filter_map(|(peer, text)| Some((peer, parse_newest_version(text)?)))
        .filter(|(_, version)| *version > mine)
        .collect();
    newer.sort_by_key(|(_, version)| std::cmp::Reverse(*version));
    for (peer, version) in &newer {
        tl.note(&format!(
            "{} holds newer metadata (version {version}, here {mine}): its metalogger's copy comes here first",
            peer.name()
        ));
        match fetch_copy(ctx, peer, mine) {
            Ok(()) => return Ok(()),
            Err(e) => tl.note(&format!("the copy from {} is not used - {e:#}", peer.name())),
        }
    }
    if !newer.is_empty() {
        tl.note(&format!("no newer copy could be fetched: starting from this node's own (version {mine})"));
    }
    Ok(())
}

/// Fetches `peer`'s metalogger files into a staging directory, and puts them in place of this
/// node's own (set aside, never deleted) only when they are newer than `mine`.
fn fetch_copy(ctx: &Ctx, peer: &Peer, mine: u64) -> Result<()> {
    let host = ctx.host.as_ref();
    let staging = format!("{DATA_PATH}/incoming-{}", cias_core::clock::unix_secs());
    host.run(&Command::from_argv(&["mkdir", "-p", &staging]))?;
    let fetched = host
        .run(&peer.copy_from(&format!("{DATA_PATH}/*_ml*"), &format!("{staging}/")))
        .map_err(anyhow::Error::from)
        .and_then(|_| {
            let staged =
                parse_newest_version(&host.run(&newest_version_command_in(&staging))?.stdout).unwrap_or(0);
            if ctx.dry_run || staged > mine {
                Ok(())
            } else {
                bail!("what arrived is version {staged}, not newer than this node's")
            }
        });
    if let Err(e) = fetched {
        host.run(&Command::from_argv(&["rm", "-rf", "--", &staging]))?;
        return Err(e);
    }
    host.run(&Command::from_argv(&["systemctl", "stop", "moosefs-metalogger"]))?;
    // This node's own metalogger files go aside first: left next to the peer's, a changelog
    // of its own could be merged into the chain `mfsmaster -a` replays.
    let aside = format!("{DATA_PATH}/old-metalogger-{}", cias_core::clock::unix_secs());
    move_into(host, &aside, &data_files(host)?, is_metalogger_file)?;
    // `find -exec`: the staged names are only known on the node.
    let each_staged = |action: &[&str]| {
        let mut argv = vec!["find", &staging, "-maxdepth", "1", "-name", "*_ml*", "-exec"];
        argv.extend_from_slice(action);
        argv.extend(["{}", "+"]);
        host.run(&Command::from_argv(&argv))
    };
    each_staged(&["chown", "mfs:mfs"])?;
    each_staged(&["mv", "-t", DATA_PATH, "--"])?;
    host.run(&Command::from_argv(&["rmdir", "--", &staging]))?;
    host.run(&Command::from_argv(&["systemctl", "start", "moosefs-metalogger"]))?;
    Ok(())
}

/// Two mfsmasters serving at once fork the file system's metadata, so this node starts its
/// own only once no other node can still run one: the nodes that answered say theirs is
/// stopped (a running one is waited for: its reconcile loop stops it), and every other node
/// has been out of the quorate partition for longer than it takes a node to kill its own
/// there ([`MASTER_FENCE_BOUND`]).
fn no_other_master(ctx: &Ctx, tl: &mut Timeline, survey: &Survey) -> Result<()> {
    for (peer, _) in survey.answers.iter().filter(|(_, text)| master_runs(text)) {
        tl.note(&format!("{} still runs an mfsmaster: waiting for it to stop", peer.name()));
        let started = Instant::now();
        let asks = master_state_command();
        while !ctx.dry_run && master_state_runs(&peer.host.execute(&asks)?.stdout) {
            if started.elapsed() > STOP_WAIT {
                bail!(
                    "{} still runs an mfsmaster after {}s; refusing to start a second one (stop it there)",
                    peer.name(),
                    STOP_WAIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let view = ctx.view()?;
    let lost: Vec<&str> = view.lost().into_iter().collect();
    let mut announced = false;
    loop {
        let now = boot_ms();
        let mut gone = LastSeen::load(&LastSeen::file()).absences(lost.iter().copied(), now, survey.asked_ms);
        // A node of the quorum that did not answer (measured: SSH slower than the ask limit on a
        // loaded machine) keeps being seen, so its absence would never grow. It does not hold
        // the VIP (this node does, since before the ask), and a node without the VIP stops its
        // mfsmaster within the same bound: it counts from the ask.
        for name in &survey.silent {
            gone.insert(name.clone(), Duration::from_millis(now.saturating_sub(survey.asked_ms)));
        }
        let Some(wait) =
            gone.values().map(|d| MASTER_FENCE_BOUND.saturating_sub(*d)).max().filter(|w| !w.is_zero())
        else {
            return Ok(());
        };
        if !announced {
            let names: Vec<&str> = gone.keys().map(String::as_str).collect();
            tl.note(&format!(
                "{} out of the quorum: waiting {:.1}s more until it has surely killed its own mfsmaster",
                names.join(", "),
                wait.as_secs_f64()
            ));
            announced = true;
        }
        if ctx.dry_run {
            return Ok(());
        }
        ctx.still_master()?;
        std::thread::sleep(wait.min(Duration::from_millis(250)));
    }
}

pub fn promote(ctx: &Ctx, tl: &mut Timeline) -> Result<()> {
    if active(ctx, "moosefs-master")? {
        tl.note("mfsmaster already runs on this node");
    } else {
        let survey = survey(ctx, tl)?;
        take_newer_copy(ctx, tl, &survey)?;
        no_other_master(ctx, tl, &survey)?;
        if !ctx.dry_run && newest_version(ctx.host.as_ref())? == 0 {
            bail!(
                "{DATA_PATH} holds no metadata file from the metalogger, here or on any quorate node; refusing \
                 to start an empty master (chunkservers would refuse its new metadata id) - restore {DATA_PATH} \
                 from another node's metalogger"
            );
        }
        ctx.host.run(&Command::from_argv(&["systemctl", "start", "moosefs-master"]))?;
        // This node's copy is the lineage again: a later demotion keeps its metalogger's.
        clear_mark(ctx.host.as_ref(), cias_core::paths::CUT_OFF_MARK)?;
    }
    ctx.host.run(&Command::from_argv(&["systemctl", "start", "moosefs-cgiserv"]))?;
    if ctx.dry_run {
        return Ok(());
    }
    let vip = ctx.settings.internal.master_vip.to_string();
    let started = Instant::now();
    while !port_open(ctx.host.as_ref(), &vip, 9421)? {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the new mfsmaster does not answer at {vip}:9421 after 60 s (see journalctl -u moosefs-master)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    tl.note(&format!("mfsmaster answers clients at {vip}:9421"));
    Ok(())
}

/// The planned handover: the old master stops cleanly (it dumps its whole metadata), and that
/// file comes here, where the next `mfsmaster -a` starts from it. Clients wait in between.
pub fn take_final_metadata(ctx: &Ctx, old: &Peer) -> Result<()> {
    let stop = |unit: &str| Command::from_argv(&["systemctl", "stop", unit]).timeout(STOP_LIMIT);
    // Its reconcile loop would restart a master stopped while it still holds the VIP.
    set_mark(old.host.as_ref(), HANDOVER_MARK)?;
    old.host.run(&stop("moosefs-cgiserv"))?;
    old.host.run(&stop("moosefs-master"))?;
    // A running master keeps its metadata as metadata.mfs.back: the file only exists once it
    // stopped, so a dry run cannot look for it.
    if !ctx.dry_run {
        old.host
            .run(&Command::query_argv(&["test", "-s", METADATA]))
            .with_context(|| format!("{} stopped its mfsmaster but wrote no {METADATA}", old.name()))?;
    }
    ctx.host.run(&old.copy_from(METADATA, METADATA))?;
    ctx.host.run(&Command::from_argv(&["chown", "mfs:mfs", METADATA]))?;
    Ok(())
}

/// Undoes [`take_final_metadata`] when this node could not become master: the old master
/// starts again from the metadata it just wrote.
pub fn restart_old_master(old: &Peer) -> Result<()> {
    for unit in ["moosefs-master", "moosefs-cgiserv"] {
        old.host.run(&Command::from_argv(&["systemctl", "start", unit]))?;
    }
    clear_mark(old.host.as_ref(), HANDOVER_MARK)?;
    Ok(())
}

/// Undoes a promotion that raced with losing the election, the way keepalived's
/// notify_backup does (`dlll_cias-fence demoted`: mfsmaster stopped, its files set aside).
pub fn demote(ctx: &Ctx) -> Result<()> {
    let fence = format!("{}/dlll_cias-fence", cias_core::paths::BIN_DIR);
    ctx.host.run(&Command::from_argv(&[&fence, "demoted"]))?;
    Ok(())
}

/// Makes `/mnt/mfs` usable here: the VM map and the VMs' disks are read through it. It is
/// mounted when it is not (the fence unmounts it, and a remount fails while no master runs),
/// and mounted afresh when it does not answer: a mount whose master vanished without a word
/// (a power-off) kept its requests waiting for the old master for 10 s to over a minute after
/// the new one answered (measured in the lab), where a new mount answers at once.
pub fn ensure_mounted(ctx: &Ctx, tl: &mut Timeline) -> Result<()> {
    let mount = cias_core::paths::MFS_MOUNT;
    if is_mounted(ctx.host.as_ref(), mount)? {
        if ctx.dry_run || answers(ctx, mount)? {
            return Ok(());
        }
        tl.note(&format!("{mount} does not answer within {}s: mounted afresh", ANSWER_LIMIT.as_secs()));
        ctx.host.run(&Command::from_argv(&["umount", "-l", mount]))?;
    }
    let started = Instant::now();
    loop {
        let start = Command::from_argv(&["systemctl", "restart", cias_core::paths::MFS_MOUNT_UNIT]);
        let tried = ctx.host.execute(&start.timeout(Duration::from_secs(30)))?;
        if ctx.dry_run || (is_mounted(ctx.host.as_ref(), mount)? && answers(ctx, mount)?) {
            tl.note(&format!("{mount} mounted again"));
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("cannot mount {mount}: {}", tried.stderr.trim());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// How long a usable mount takes at most to answer a `stat` of its root.
const ANSWER_LIMIT: Duration = Duration::from_secs(5);

/// Whether the mount at `mount` answers a `stat` of its root within [`ANSWER_LIMIT`] (one
/// waiting for a master blocks; FUSE waits end on SIGKILL).
fn answers(ctx: &Ctx, mount: &str) -> Result<bool> {
    let limit = ANSWER_LIMIT.as_secs().to_string();
    let probe = Command::query_argv(&["timeout", "-s", "KILL", &limit, "stat", "-t", mount]);
    Ok(ctx.host.execute(&probe.timeout(ANSWER_LIMIT + Duration::from_secs(2)))?.success())
}
