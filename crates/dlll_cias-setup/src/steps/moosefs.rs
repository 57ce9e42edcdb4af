//! MooseFS on this node: its data disks (formatted only as the disk plan allowed, mounted by
//! UUID), the configuration, the master (first node only), metalogger and chunkserver, and
//! the `/mnt/mfs` mount.

use std::time::Duration;

use anyhow::{bail, Result};
use cias_core::disks::{self, LoopDevices, Verdict};
use cias_core::host::NEW_FILE;
use cias_core::paths::{MFS_MASTER_HOST, MFS_MOUNT};
use cias_core::settings::{DiskFilesystem, Secret};
use cias_core::templates::contexts::{moosefs_files, MooseFsContext};

use crate::ctx::Ctx;
use crate::node::PlannedDisk;
use crate::preflight::port_open;

const FSTAB: &str = "/etc/fstab";
const FSTAB_MARK: &str = "# dlll-cias";
const METADATA: &str = "/var/lib/mfs/metadata.mfs";

fn fs_name(fs: DiskFilesystem) -> &'static str {
    match fs {
        DiskFilesystem::Ext4 => "ext4",
        DiskFilesystem::Xfs => "xfs",
    }
}

/// Whether `path` is a mount point, from /proc/mounts (never `stat`: a MooseFS mount whose
/// master is gone blocks it).
fn mounted(ctx: &Ctx, path: &str) -> Result<bool> {
    Ok(cias_core::host::is_mounted(ctx.local.as_ref(), path)?)
}

/// A blkid field of `device`, empty when it has none.
fn blkid(ctx: &Ctx, device: &str, tag: &str) -> Result<String> {
    let out = ctx
        .local
        .execute(&cias_core::host::Command::query_argv(&["blkid", "-p", "-s", tag, "-o", "value", device]))?;
    Ok(out.stdout.trim().to_string())
}

/// Formats one planned disk unless an earlier run already did (our label on it). Right before
/// `mkfs` the disk is checked again: only a blank disk, or one named with `--wipe`, is formatted.
fn format(ctx: &Ctx, disk: &PlannedDisk, fs: DiskFilesystem) -> Result<()> {
    if blkid(ctx, &disk.device, "LABEL")? == disk.label() {
        tracing::info!("{} already carries our file system, kept", disk.device);
        return Ok(());
    }
    let loops =
        if disk.device.starts_with("/dev/loop") { LoopDevices::AreDisks } else { LoopDevices::Refused };
    let mut now = crate::preflight::node_disks(ctx.local.as_ref(), loops)?;
    let wipe: Vec<String> = if disk.wiped { vec![disk.device.clone()] } else { vec![] };
    disks::approve(&mut now, &wipe)?;
    match now.iter().find(|d| d.path == disk.device).map(|d| &d.verdict) {
        Some(Verdict::Format) => {}
        Some(Verdict::Wipe(_)) => {
            ctx.run(&["wipefs", "--all", &disk.device])?;
        }
        Some(Verdict::NeedsWipe(why) | Verdict::Never(why)) => {
            bail!("{} changed since the plan and is not formatted: {why}", disk.device)
        }
        None => bail!("{} is gone since the plan", disk.device),
    }
    let label = disk.label();
    match fs {
        DiskFilesystem::Ext4 => ctx.run(&["mkfs.ext4", "-q", "-F", "-m", "0", "-L", &label, &disk.device])?,
        DiskFilesystem::Xfs => ctx.run(&["mkfs.xfs", "-q", "-f", "-L", &label, &disk.device])?,
    };
    Ok(())
}

/// Replaces `/etc/fstab` only with a file `findmnt --verify` accepts (every line parses, each
/// mount point exists, each source is found): a broken fstab can stop the next boot.
fn write_fstab(ctx: &Ctx, text: &str) -> Result<()> {
    ctx.write_checked(FSTAB, text, "0644", &["findmnt", "--verify", "--tab-file", NEW_FILE])
}

/// Formats and mounts the planned disks at `/data/<dev>`, in fstab by UUID.
pub fn disks(ctx: &mut Ctx) -> Result<()> {
    let fs = ctx.settings.moosefs.disk_filesystem;
    let mut fstab = ctx.query(&["cat", FSTAB])?;
    let before = fstab.clone();
    for disk in &ctx.node.disks {
        format(ctx, disk, fs)?;
        let uuid = match blkid(ctx, &disk.device, "UUID")? {
            uuid if !uuid.is_empty() => uuid,
            _ if ctx.dry_run => format!("<UUID of {}>", disk.device),
            _ => bail!("{} has no UUID after mkfs", disk.device),
        };
        let mount_point = disk.mount_point();
        if !fstab.lines().any(|l| l.split_whitespace().nth(1) == Some(mount_point.as_str())) {
            if !fstab.ends_with('\n') && !fstab.is_empty() {
                fstab.push('\n');
            }
            fstab.push_str(&format!(
                "UUID={uuid}\t{mount_point}\t{}\tdefaults,nofail\t0\t2\t{FSTAB_MARK} {}\n",
                fs_name(fs),
                disk.device
            ));
        }
    }
    for disk in &ctx.node.disks {
        ctx.run(&["mkdir", "-p", &disk.mount_point()])?;
    }
    if fstab != before {
        write_fstab(ctx, &fstab)?;
    }
    for disk in &ctx.node.disks {
        let mount_point = disk.mount_point();
        if !mounted(ctx, &mount_point)? {
            ctx.run(&["mount", &mount_point])?;
        }
        ctx.run(&["chown", "mfs:mfs", &mount_point])?;
    }
    Ok(())
}

/// Where the drop-in that makes every mfsmaster start a promotion (`-a`) goes.
const MASTER_DROP_IN_DIR: &str = "/etc/systemd/system/moosefs-master.service.d";

pub fn config(ctx: &mut Ctx) -> Result<()> {
    let mounts = ctx.node.disks.iter().map(PlannedDisk::mount_point).collect();
    let context = MooseFsContext::new(&ctx.settings, mounts, ctx.secrets.moosefs_password.clone());
    for file in moosefs_files(&ctx.templates, &context)? {
        match file.secret {
            None => ctx.write(&file.path, &file.text, "0644")?,
            Some(secret) => {
                // write_secret_file adds a newline; mfsmount reads the first line.
                ctx.write_secret(&file.path, &Secret::new(file.text.trim_end()), secret.mode)?;
                ctx.run(&["chown", &format!("root:{}", secret.group), &file.path])?;
            }
        }
    }
    let drop_in = ctx.templates.render(
        "systemd/moosefs-master.override.conf.j2",
        &std::collections::BTreeMap::<&str, &str>::new(),
    )?;
    ctx.run(&["mkdir", "-p", MASTER_DROP_IN_DIR])?;
    ctx.write(&format!("{MASTER_DROP_IN_DIR}/dlll-cias.conf"), &drop_in, "0644")?;
    ctx.run(&["systemctl", "daemon-reload"])?;
    Ok(())
}

fn wait_port(ctx: &Ctx, host: &str, port: u16, what: &str) -> Result<()> {
    ctx.wait_until(what, Duration::from_secs(60), || port_open(ctx.local.as_ref(), host, port))
}

/// The first master: empty metadata, one start/stop so the metadata file is real before any
/// metalogger copies it, then running. Not enabled at boot: only the takeover starts a master
/// (a rebooted former master must never start a second one).
pub fn master(ctx: &mut Ctx) -> Result<()> {
    if !ctx.test(&["test", "-e", METADATA])? && !ctx.test(&["test", "-e", &format!("{METADATA}.back")])? {
        ctx.run(&[
            "install",
            "-o",
            "mfs",
            "-g",
            "mfs",
            "-m",
            "0640",
            &format!("{METADATA}.empty"),
            METADATA,
        ])?;
        ctx.run(&["systemctl", "start", "moosefs-master"])?;
        wait_port(ctx, "127.0.0.1", 9421, "the new MooseFS master")?;
        ctx.run(&["systemctl", "stop", "moosefs-master"])?;
    }
    ctx.run(&["systemctl", "disable", "moosefs-master", "moosefs-cgiserv"])?;
    ctx.run(&["systemctl", "start", "moosefs-master", "moosefs-cgiserv"])?;
    wait_port(ctx, MFS_MASTER_HOST, 9421, "the MooseFS master at cias-pve-master")?;
    wait_port(ctx, "127.0.0.1", 9425, "the MooseFS web UI (mfscgiserv)")?;
    Ok(())
}

pub fn services(ctx: &mut Ctx) -> Result<()> {
    wait_port(ctx, MFS_MASTER_HOST, 9419, "the MooseFS master at cias-pve-master")?;
    ctx.run(&["systemctl", "enable", "moosefs-metalogger", "moosefs-chunkserver"])?;
    ctx.run(&["systemctl", "restart", "moosefs-metalogger", "moosefs-chunkserver"])?;
    Ok(())
}

/// `/mnt/mfs` from fstab (mounted at boot once the network is up).
pub fn mount(ctx: &mut Ctx) -> Result<()> {
    ctx.run(&["mkdir", "-p", MFS_MOUNT])?;
    let fstab = ctx.query(&["cat", FSTAB])?;
    if !fstab.lines().any(|l| l.split_whitespace().nth(1) == Some(MFS_MOUNT)) {
        let line = format!(
            "mfsmount\t{MFS_MOUNT}\tfuse\tmfsmaster={MFS_MASTER_HOST},_netdev,nofail\t0\t0\t{FSTAB_MARK}\n"
        );
        write_fstab(ctx, &format!("{}{}{line}", fstab, if fstab.ends_with('\n') { "" } else { "\n" }))?;
    }
    // systemd makes its mount unit from the fstab line; the fence and the takeover mount
    // MooseFS again through that unit.
    ctx.run(&["systemctl", "daemon-reload"])?;
    if !mounted(ctx, MFS_MOUNT)? {
        ctx.run(&["systemctl", "start", cias_core::paths::MFS_MOUNT_UNIT])?;
    }
    ctx.wait_until("/mnt/mfs mounted", Duration::from_secs(30), || mounted(ctx, MFS_MOUNT))?;
    if ctx.node.role == crate::node::Role::First {
        // Deleted files keep their space this long; what is created later inherits it.
        let secs = ctx.settings.moosefs.trash_time_secs.to_string();
        ctx.run(&["mfssettrashtime", "-r", &secs, MFS_MOUNT])?;
    }
    Ok(())
}
