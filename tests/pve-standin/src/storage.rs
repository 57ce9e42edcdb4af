//! Storages (`storage.cfg`, `pvesm`) and backups (`vzdump`, `qmrestore`).
//! An NFS storage is checked as Proxmox's NFSPlugin does (`showmount` against the server,
//! real), but never mounted: the lab's kernel has no NFS client. So it counts as active while
//! the server lists its export, with no sizes (zeros).
//! Archives are tar files under the real names (`vzdump-qemu-VMID-YYYY_MM_DD-HH_MM_SS.vma[.gz]`)
//! holding the config and the disk; only this stand-in reads them back.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::args::{param_error, Args};
use crate::cluster::Env;
use crate::sectioncfg::{self, Section};
use crate::{router, vmconf, vmproc, Failure, Result};

/// storage.cfg's order: a type's fixed keys (dir: path; nfs: export, path, server), then the rest.
const STORAGE_KEYS_FIRST: &[&str] = &["export", "path", "server"];
const DEFAULT_STORAGE_CFG: &str = "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n";

#[derive(Debug, Clone)]
pub struct Storage {
    pub id: String,
    pub kind: String,
    pub path: String,
    pub section: Section,
}

fn cfg_path(env: &Env) -> PathBuf {
    env.root.join("storage.cfg")
}

pub fn all(env: &Env) -> Result<Vec<Storage>> {
    Ok(sectioncfg::read(&cfg_path(env), DEFAULT_STORAGE_CFG)?
        .into_iter()
        .map(|s| Storage {
            id: s.id.clone(),
            kind: s.kind.clone(),
            path: match s.kind.as_str() {
                "nfs" => format!("/mnt/pve/{}", s.id),
                _ => s.props.get("path").cloned().unwrap_or_default(),
            },
            section: s,
        })
        .collect())
}

pub fn find(env: &Env, id: &str) -> Result<Storage> {
    all(env)?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| Failure::die(format!("storage '{id}' does not exist")))
}

fn is_mount_point(path: &str) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let wanted = path.trim_end_matches('/');
    mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(wanted))
}

/// (total, used, available) in KiB, from df.
fn usage_kib(path: &str) -> Option<(u64, u64, u64)> {
    let out = Command::new("df").args(["-k", "--output=size,used,avail", path]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let nums: Vec<u64> = text.lines().nth(1)?.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    (nums.len() == 3).then(|| (nums[0], nums[1], nums[2]))
}

/// `/sbin/showmount --no-headers --exports SERVER` (NFSPlugin's check, 10 s): the exported
/// paths and their clients, or the failure as Proxmox's run_command words it.
fn exports(server: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let argv = ["/sbin/showmount", "--no-headers", "--exports", server];
    let out = Command::new("timeout").arg("10").args(argv).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{}command '{}' failed: exit code {}",
            String::from_utf8_lossy(&out.stderr),
            argv.join(" "),
            out.status.code().unwrap_or(-1)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .filter(|(path, _)| path.starts_with('/'))
        .map(|(path, clients)| (path.to_string(), clients.trim().to_string()))
        .collect())
}

/// (total, used, available) KiB of an active storage; `None` when it is not active.
fn usage(s: &Storage) -> Option<(u64, u64, u64)> {
    if s.kind != "nfs" {
        return usage_kib(&s.path);
    }
    let (server, export) = (s.section.props.get("server")?, s.section.props.get("export")?);
    exports(server).ok()?.iter().any(|(path, _)| path == export).then_some((0, 0, 0))
}

/// One storage as `/nodes/N/storage` shows it.
pub fn status_json(s: &Storage) -> serde_json::Value {
    let usage = usage(s);
    let (total, used, avail) = usage.unwrap_or((0, 0, 0));
    serde_json::json!({
        "storage": s.id, "type": s.kind, "content": s.section.props.get("content").cloned().unwrap_or_default(),
        "active": u8::from(usage.is_some()), "enabled": 1,
        "shared": u8::from(s.section.props.get("shared").is_some_and(|v| v == "1") || s.kind == "nfs"),
        "total": total * 1024, "used": used * 1024, "avail": avail * 1024,
    })
}

pub fn pvesm(env: &Env, raw: &[String]) -> Result<u8> {
    let args = Args::parse(raw)?;
    match args.positional.first().map(String::as_str) {
        Some("add") => add(env, &args),
        Some("path") => {
            // `pvesm path STORAGE:VOLUME` prints the file behind a volume.
            let volid = args.pos(1, "volume")?;
            let (storage, volume) = volid
                .split_once(':')
                .ok_or_else(|| Failure::die(format!("unable to parse volume ID '{volid}'")))?;
            println!("{}", crate::vmconf::disk_file(env, storage, volume)?.display());
            Ok(0)
        }
        Some("remove") => {
            let id = args.pos(1, "storage")?;
            env.require_quorum()?;
            let mut sections = sectioncfg::read(&cfg_path(env), DEFAULT_STORAGE_CFG)?;
            let before = sections.len();
            sections.retain(|s| s.id != id);
            if sections.len() == before {
                return Err(Failure::die(format!("delete storage failed: storage '{id}' does not exist")));
            }
            sectioncfg::write(&cfg_path(env), &sections, STORAGE_KEYS_FIRST)?;
            Ok(0)
        }
        Some("status") => {
            // pvesm.pm's $print_status: the name column as wide as the longest ID, plus one.
            let mut storages = all(env)?;
            storages.sort_by(|a, b| a.id.cmp(&b.id));
            let w = storages.iter().map(|s| s.id.len()).max().unwrap_or(4).max(4) + 1;
            println!(
                "{:<w$} {:>10} {:>10} {:>15} {:>15} {:>15} {:>8}",
                "Name", "Type", "Status", "Total (KiB)", "Used (KiB)", "Available (KiB)", "%"
            );
            for s in storages {
                let (status, (t, u, a)) = match usage(&s) {
                    Some(x) => ("active", x),
                    None => {
                        eprintln!("storage '{}' is not online", s.id);
                        ("inactive", (0, 0, 0))
                    }
                };
                let pct = if t == 0 { 0.0 } else { u as f64 * 100.0 / t as f64 };
                println!("{:<w$} {:>10} {:>10} {t:>15} {u:>15} {a:>15} {:>7.2}%", s.id, s.kind, status, pct);
            }
            Ok(0)
        }
        Some("scan") => {
            if args.pos(1, "type")? != "nfs" {
                return Err(Failure::with_code("USAGE: pvesm scan <COMMAND> [ARGS] [OPTIONS]", 255));
            }
            let mut found = exports(args.pos(2, "server")?).map_err(Failure::die)?;
            found.sort();
            let w = found.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
            for (path, clients) in found {
                println!("{path:<w$} {clients}");
            }
            Ok(0)
        }
        _ => Err(Failure::with_code("USAGE: pvesm <COMMAND> [ARGS] [OPTIONS]", 255)),
    }
}

fn add(env: &Env, args: &Args) -> Result<u8> {
    let kind = args.pos(1, "type")?.to_string();
    let id = args.pos(2, "storage")?.to_string();
    // pve-storage's parse_storage_id: m/^[a-z][a-z0-9\-\_\.]*[a-z0-9]$/i
    let valid_id = id.len() > 1
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.ends_with(|c: char| c.is_ascii_alphanumeric())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid_id {
        return Err(param_error(
            "storage",
            &format!("invalid format - storage ID '{id}' contains illegal characters"),
        ));
    }
    env.require_quorum()?;
    let mut sections = sectioncfg::read(&cfg_path(env), DEFAULT_STORAGE_CFG)?;
    if sections.iter().any(|s| s.id == id) {
        return Err(Failure::die(format!("create storage failed: storage ID '{id}' already defined")));
    }
    let mut section = Section { kind: kind.clone(), id: id.clone(), props: Default::default() };
    for (k, v) in &args.options {
        section.props.insert(k.clone(), v.clone());
    }
    match kind.as_str() {
        "dir" => {
            let path = args
                .opt("path")
                .ok_or_else(|| param_error("path", "property is missing and it is not optional"))?;
            if args.opt("is_mountpoint").is_some_and(|v| v == "yes" || v == "1") && !is_mount_point(path) {
                return Err(Failure::die(format!("create storage failed: unable to activate storage '{id}' - directory is expected to be a mount point but is not mounted: '{path}'")));
            }
        }
        "nfs" => {
            for required in ["server", "export"] {
                args.opt(required)
                    .ok_or_else(|| param_error(required, "property is missing and it is not optional"))?;
            }
            let (server, export) =
                (args.opt("server").unwrap_or_default(), args.opt("export").unwrap_or_default());
            // NFSPlugin: check_connection, then the mount (here: the export must be listed).
            let listed = exports(server)
                .map_err(|_| Failure::die(format!("create storage failed: storage '{id}' is not online")))?;
            if !listed.iter().any(|(path, _)| path == export) {
                return Err(Failure::die(format!(
                    "create storage failed: mount error: mount.nfs: access denied by server while mounting {server}:{export}"
                )));
            }
            section.props.insert("path".into(), format!("/mnt/pve/{id}"));
        }
        other => {
            return Err(param_error(
                "type",
                &format!("value '{other}' does not have a value in the enumeration 'dir, nfs'"),
            ))
        }
    }
    sections.push(section);
    sectioncfg::write(&cfg_path(env), &sections, STORAGE_KEYS_FIRST)?;
    Ok(0)
}

/// `vzdump VMID[,...] --storage S --mode M --compress C [--prune-backups keep-last=N]`.
pub fn vzdump(env: &Env, raw: &[String]) -> Result<u8> {
    let args = Args::parse(raw)?;
    let storage = find(env, args.opt("storage").unwrap_or("local"))?;
    let compress = args.opt("compress").unwrap_or("0");
    let ext = match compress {
        "0" => "vma",
        "1" | "lzo" => "vma.lzo",
        "gzip" => "vma.gz",
        "zstd" => "vma.zst",
        other => {
            return Err(param_error(
                "compress",
                &format!("value '{other}' does not have a value in the enumeration '0, 1, gzip, lzo, zstd'"),
            ))
        }
    };
    let mut vmids: Vec<u32> =
        args.positional.iter().flat_map(|p| p.split(',')).filter_map(|v| v.parse().ok()).collect();
    if args.flag("all") {
        let excluded: Vec<u32> = args
            .opt("exclude")
            .unwrap_or_default()
            .split(',')
            .filter_map(|v| v.trim().parse().ok())
            .collect();
        vmids = local_vmids(env)?.into_iter().filter(|v| !excluded.contains(v)).collect();
    }
    let keep_last = args
        .opt("prune-backups")
        .or(storage.section.props.get("prune-backups").map(String::as_str))
        .and_then(|p| p.split(',').find_map(|kv| kv.strip_prefix("keep-last=")?.parse::<usize>().ok()));
    eprintln!("INFO: starting new backup job: vzdump {}", raw.join(" "));
    for vmid in vmids {
        // The real tool silently skips VMs of other nodes (exit 0, nothing done).
        if vmconf::owner(env, vmid)?.as_deref() != Some(env.node.as_str()) {
            continue;
        }
        let dump = Path::new(&storage.path).join("dump");
        std::fs::create_dir_all(&dump)?;
        let stamp = chrono::Local::now().format("%Y_%m_%d-%H_%M_%S");
        let archive = dump.join(format!("vzdump-qemu-{vmid}-{stamp}.{ext}"));
        eprintln!("INFO: Starting Backup of VM {vmid} (qemu)");
        eprintln!("INFO: creating vzdump archive '{}'", archive.display());
        // As PVE/VZDump.pm: written under the name with its last suffix replaced by `.dat`,
        // renamed once complete.
        let partial = archive.with_extension("dat");
        write_archive(env, vmid, &partial, compress)?;
        if let Ok(pause) = std::env::var("PVE_STANDIN_VZDUMP_PAUSE_SECS") {
            std::thread::sleep(std::time::Duration::from_secs(pause.parse().unwrap_or(0)));
        }
        std::fs::rename(&partial, &archive)?;
        std::fs::write(dump.join(format!("vzdump-qemu-{vmid}-{stamp}.log")), "INFO: backup done\n")?;
        eprintln!("INFO: Finished Backup of VM {vmid} (00:00:01)");
        if let Some(keep) = keep_last {
            prune(&dump, vmid, keep)?;
        }
    }
    eprintln!("INFO: Backup job finished successfully");
    Ok(0)
}

fn local_vmids(env: &Env) -> Result<Vec<u32>> {
    let Ok(entries) = std::fs::read_dir(env.qemu_dir(&env.node)) else { return Ok(Vec::new()) };
    Ok(entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".conf")?.parse().ok())
        .collect())
}

fn write_archive(env: &Env, vmid: u32, archive: &Path, compress: &str) -> Result<()> {
    let config = vmconf::load(env, &env.node, vmid)?;
    let disk = match vmconf::first_disk(&config) {
        Some((storage, volume)) => Some(vmconf::disk_file(env, &storage, &volume)?).filter(|d| d.exists()),
        None => None,
    };
    pack(&vmconf::render(&config), disk.as_deref(), archive, compress)
        .map_err(|_| Failure::die(format!("ERROR: Backup of VM {vmid} failed - archive write failed")))
}

/// The archive format `qmrestore` reads back: a tar of `qemu-server.conf` and, when the VM
/// has one, its first disk as `disk-0.raw`, compressed as the extension says.
fn pack(config: &str, disk: Option<&Path>, archive: &Path, compress: &str) -> Result<()> {
    let staging = tempdir()?;
    std::fs::write(staging.join("qemu-server.conf"), config)?;
    if let Some(disk) = disk {
        std::fs::copy(disk, staging.join("disk-0.raw"))?;
    }
    let filter = match compress {
        "gzip" => "| gzip",
        "zstd" => "| zstd -q",
        "1" | "lzo" => "| lzop",
        _ => "",
    };
    let script = format!("tar -C '{}' -cf - . {filter} > '{}'", staging.display(), archive.display());
    let status = Command::new("sh").args(["-c", &script]).status()?;
    let _ = std::fs::remove_dir_all(&staging);
    if !status.success() {
        return Err(Failure::die(format!("cannot write {}", archive.display())));
    }
    Ok(())
}

/// Keeps the newest `keep` archives of `vmid` in `dump` (names sort by time).
fn prune(dump: &Path, vmid: u32, keep: usize) -> Result<()> {
    let prefix = format!("vzdump-qemu-{vmid}-");
    let mut archives: Vec<PathBuf> = std::fs::read_dir(dump)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with(&prefix) && !n.to_string_lossy().ends_with(".log")
            })
        })
        .collect();
    archives.sort();
    let excess = archives.len().saturating_sub(keep);
    for old in &archives[..excess] {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

fn tempdir() -> Result<PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("pve-standin-{}-{}", std::process::id(), crate::cluster::now_ms()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `pve-standin make-router-archive PATH`: the router VM as its vendor delivers it - an
/// uncompressed vzdump archive of VM 100 `cias-router` (2 GiB, 2 cores, NIC on vmbr0, 4 GiB
/// `scsi0` on `local`, `onboot 1`) whose disk is empty, so it boots with its factory password.
/// PATH is the archive file, or a directory that gets `vzdump-qemu-100-<now>.vma`; the path
/// written is printed.
pub fn make_router_archive(raw: &[String]) -> Result<u8> {
    let [target] = raw else {
        return Err(Failure::with_code("usage: pve-standin make-router-archive PATH", 2));
    };
    let vmid = router::VMID;
    let mut archive = PathBuf::from(target);
    if archive.is_dir() {
        let stamp = chrono::Local::now().format("%Y_%m_%d-%H_%M_%S");
        archive = archive.join(format!("vzdump-qemu-{vmid}-{stamp}.vma"));
    }
    let config = format!(
        "boot: order=scsi0;net0\ncores: 2\nmemory: 2048\nname: cias-router\n\
         net0: virtio={},bridge=vmbr0\nonboot: 1\nostype: l26\n\
         scsi0: local:{vmid}/vm-{vmid}-disk-0.raw,size=4G\nscsihw: virtio-scsi-pci\n",
        router::MAC.to_uppercase()
    );
    let empty = tempdir()?.join("disk-0.raw");
    std::fs::write(&empty, "")?;
    let packed = pack(&config, Some(&empty), &archive, "0");
    let _ = std::fs::remove_dir_all(empty.parent().expect("in its directory"));
    packed?;
    println!("{}", archive.display());
    Ok(0)
}

/// Whether `name` is one pve-storage's `archive_info` reads as a VM archive:
/// `vzdump-qemu-<anything>.vma[.gz|.lzo|.zst]`.
fn vzdump_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("vzdump-qemu-") else { return false };
    ["vma", "vma.gz", "vma.lzo", "vma.zst"]
        .iter()
        .any(|ext| rest.strip_suffix(ext).is_some_and(|stem| stem.len() > 1 && stem.ends_with('.')))
}

/// `vma verify FILE`: reads the whole archive (here: the tar it is), silent when it is whole.
pub fn vma(raw: &[String]) -> Result<u8> {
    let [verb, file] = raw else {
        return Err(Failure::with_code("usage: vma verify <filename>", 255));
    };
    if verb != "verify" {
        return Err(Failure::with_code(format!("vma: unknown command '{verb}'"), 255));
    }
    let whole = Command::new("tar").args(["-tf", file]).stdout(std::process::Stdio::null()).status()?;
    if !whole.success() {
        return Err(Failure::with_code(format!("vma verify: {file}: the archive is damaged"), 255));
    }
    Ok(0)
}

/// `qmrestore ARCHIVE VMID [--storage S] [--force 1] [--unique 1]`.
pub fn qmrestore(env: &Env, raw: &[String]) -> Result<u8> {
    let args = Args::parse(raw)?;
    let archive_arg = args.pos(0, "archive")?;
    let vmid: u32 =
        args.pos(1, "vmid")?.parse().map_err(|_| param_error("vmid", "type check ('integer') failed"))?;
    let fail = |why: String| Failure::die(format!("unable to restore VM {vmid} - {why}"));
    let archive = match archive_arg.split_once(":backup/") {
        Some((store, file)) => Path::new(&find(env, store)?.path).join("dump").join(file),
        None => PathBuf::from(archive_arg),
    };
    if !archive.exists() {
        return Err(fail(format!("can't find archive file '{}'", archive.display())));
    }
    // pve-storage `archive_info`: the type and compression come from the vzdump name.
    if !vzdump_name(&archive.file_name().unwrap_or_default().to_string_lossy()) {
        return Err(Failure::die(format!(
            "ERROR: couldn't determine archive info from '{}'",
            archive.display()
        )));
    }
    match vmconf::owner(env, vmid)? {
        Some(node) if node != env.node || !args.flag("force") => {
            return Err(fail(format!("VM {vmid} already exists on node '{node}'")));
        }
        Some(_) if vmproc::running(env, vmid).is_some() => return Err(fail("vm is running".into())),
        _ => {}
    }
    env.require_quorum().map_err(|f| fail(f.message))?;
    let staging = tempdir()?;
    let status = Command::new("tar")
        .args(["-C", &staging.to_string_lossy(), "-xf", &archive.to_string_lossy()])
        .status()?;
    if !status.success() {
        return Err(fail(format!("unable to read archive '{}'", archive.display())));
    }
    let mut config = vmconf::parse(&std::fs::read_to_string(staging.join("qemu-server.conf"))?);
    if let Some((old_storage, _)) = vmconf::first_disk(&config) {
        let target = args.opt("storage").unwrap_or(&old_storage).to_string();
        let volume = format!("{vmid}/vm-{vmid}-disk-0.raw");
        let disk = vmconf::disk_file(env, &target, &volume)?;
        std::fs::create_dir_all(disk.parent().expect("disk has a directory"))?;
        if staging.join("disk-0.raw").exists() {
            std::fs::copy(staging.join("disk-0.raw"), &disk)?;
        }
        let key = ["scsi0", "virtio0", "sata0", "ide0"]
            .into_iter()
            .find(|k| config.contains_key(*k))
            .expect("disk key");
        let options: String = config[key].split_once(',').map(|(_, o)| format!(",{o}")).unwrap_or_default();
        config.insert(key.to_string(), format!("{target}:{volume}{options}"));
    }
    let _ = std::fs::remove_dir_all(&staging);
    vmconf::save(env, &env.node, vmid, &config)?;
    println!("restore vma archive: {}", archive.display());
    println!("TASK OK");
    Ok(0)
}
