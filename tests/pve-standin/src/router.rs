//! The router VM (VMID 100, Zentyal in production). While it runs on a node it owns the LAN
//! address 10.0.0.254 on its first NIC (`eth0` in namespace `vm100`, plugged by [`nic`] like
//! every VM's, so the VM firewall filters it as any other), and an SSH server answers there
//! with the factory login `cias`.
//!
//! The router's scripts (`create_user.sh`, `setup_ip_proxmox.sh`, `setup_ip_nas.sh`,
//! `setup_ip_vm.sh`, `dev_clean.sh`, `change_password.sh`, which reads the new password on
//! stdin, and the toolkit's `remove_ip_vm.sh`, `setup_port_forward.sh` and
//! `remove_port_forward.sh`) append a record of each call to the VM's disk, like everything else the router keeps
//! (its password hash, its SSH host key): so it all moves with the VM through migration,
//! recovery and backup/restore. Disk records are lines: `CALL <ms> <script> <json args>`,
//! `PASS <hash>`, `HOSTKEY <base64 private key>`. `list_ip_vm.sh` and `list_port_forwards.sh`
//! print the state those calls made (they record nothing: they change nothing).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cluster::{now_ms, Env};
use crate::{nic, Failure, Result};

pub const VMID: u32 = 100;
const ADDRESS: &str = "10.0.0.254/8";
const LOGIN: &str = "cias";
const FACTORY_PASSWORD: &str = "dlll@nccu";
pub const MAC: &str = "02:ca:5e:ff:01:00";
/// Scripts that read a password on stdin (never on their command line).
const READS_SECRET: &[&str] = &["change_password.sh", "create_user.sh"];

fn state_dir(env: &Env) -> PathBuf {
    env.run.join("router")
}

fn sh(argv: &[&str]) -> Result<()> {
    let out = Command::new(argv[0]).args(&argv[1..]).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Failure::die(format!("{}: {}", argv.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

/// The newest record of `kind` on the disk.
fn last_record(disk: &Path, kind: &str) -> Option<String> {
    let text = std::fs::read_to_string(disk).ok()?;
    let prefix = format!("{kind} ");
    text.lines().rev().find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

fn append(disk: &Path, line: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(disk)?;
    writeln!(file, "{line}")?;
    file.sync_data()?;
    Ok(())
}

/// Brings the router's address and SSH server up on its plugged NIC ([`nic::plug`]).
pub fn start(env: &Env, disk: &Path) -> Result<()> {
    let dir = state_dir(env);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("disk"), disk.to_string_lossy().as_bytes())?;
    // The login (uid 0, so the scripts can run chpasswd): the password comes from the disk.
    if !Command::new("id").arg(LOGIN).stdout(Stdio::null()).stderr(Stdio::null()).status()?.success() {
        sh(&["useradd", "-o", "-u", "0", "-g", "0", "-M", "-d", "/root", "-s", "/bin/sh", LOGIN])?;
    }
    match last_record(disk, "PASS") {
        Some(hash) => sh(&["usermod", "-p", &hash, LOGIN])?,
        None => set_password(&format!("{LOGIN}:{FACTORY_PASSWORD}"))?,
    }
    let key = dir.join("host_key");
    let _ = std::fs::remove_file(&key);
    match last_record(disk, "HOSTKEY") {
        Some(encoded) => {
            let out = Command::new("base64")
                .arg("-d")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                c.stdin.take().expect("stdin").write_all(encoded.as_bytes())?;
                c.wait_with_output()
            })?;
            std::fs::write(&key, out.stdout)?;
        }
        None => {
            sh(&[
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "cias-router",
                "-f",
                &key.to_string_lossy(),
            ])?;
            let encoded = Command::new("base64").args(["-w0", &key.to_string_lossy()]).output()?.stdout;
            append(disk, &format!("HOSTKEY {}", String::from_utf8_lossy(&encoded)))?;
        }
    }
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    // Zentyal's own LAN address on its first NIC (a cloud-init `ipconfig0` may have set it).
    let netns = nic::netns(VMID);
    let addresses =
        Command::new("ip").args(["-n", &netns, "-o", "-4", "addr", "show", "dev", "eth0"]).output()?;
    if !String::from_utf8_lossy(&addresses.stdout).contains(&format!(" {ADDRESS} ")) {
        sh(&["ip", "-n", &netns, "addr", "add", ADDRESS, "dev", "eth0"])?;
    }
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            // `cias` has uid 0, which sshd's PermitRootLogin covers; AllowUsers keeps root out.
            "ListenAddress {}\nHostKey {}\nPidFile {}\nAllowUsers {LOGIN}\nPermitRootLogin yes\n\
             PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\nUseDNS no\n",
            ADDRESS.trim_end_matches("/8"),
            key.display(),
            dir.join("sshd.pid").display()
        ),
    )?;
    std::fs::create_dir_all("/run/sshd")?;
    sh(&["ip", "netns", "exec", &netns, "/usr/sbin/sshd", "-f", &config.to_string_lossy()])
}

/// Takes the router's SSH server down (after its VM process stopped; [`nic::unplug`] follows).
pub fn stop(env: &Env) {
    if let Ok(pid) = std::fs::read_to_string(state_dir(env).join("sshd.pid")) {
        let _ = sh(&["kill", pid.trim()]);
    }
}

/// What the calls on the disk set up, for the two listing scripts; `None` for other scripts.
fn list(script: &str, disk: &Path) -> Result<Option<String>> {
    if script != "list_ip_vm.sh" && script != "list_port_forwards.sh" {
        return Ok(None);
    }
    let text = std::fs::read_to_string(disk).unwrap_or_default();
    let mut vm_ips: std::collections::BTreeMap<u32, String> = Default::default();
    let mut forwards: std::collections::BTreeMap<(String, u32), String> = Default::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("CALL ") else { continue };
        let mut fields = rest.splitn(3, ' ').skip(1);
        let (Some(called), Some(json)) = (fields.next(), fields.next()) else { continue };
        let args: Vec<String> = serde_json::from_str(json).unwrap_or_default();
        let number = |i: usize| args.get(i).and_then(|a| a.parse::<u32>().ok()).unwrap_or_default();
        match called {
            "setup_ip_vm.sh" => {
                vm_ips.insert(number(0), args[1].clone());
            }
            "remove_ip_vm.sh" => {
                vm_ips.remove(&number(0));
            }
            "setup_port_forward.sh" => {
                forwards.insert((args[0].clone(), number(1)), format!("{} {}", args[2], args[3]));
            }
            "remove_port_forward.sh" => {
                forwards.remove(&(args[0].clone(), number(1)));
            }
            _ => {}
        }
    }
    Ok(Some(if script == "list_ip_vm.sh" {
        vm_ips.iter().map(|(index, ip)| format!("{index} {ip}\n")).collect()
    } else {
        forwards.iter().map(|((ip, port), to)| format!("{ip} {port} {to}\n")).collect()
    }))
}

fn set_password(user_and_password: &str) -> Result<()> {
    let mut child = Command::new("chpasswd").stdin(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    child.stdin.take().expect("stdin").write_all(format!("{user_and_password}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(Failure::die(format!("chpasswd: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// `pve-standin router-call SCRIPT ARGS...`: one of the router's scripts, run over SSH.
pub fn call(env: &Env, args: &[String]) -> Result<u8> {
    let (script, rest) =
        args.split_first().ok_or_else(|| Failure::die("usage: router-call SCRIPT [ARGS...]"))?;
    let disk = PathBuf::from(
        std::fs::read_to_string(state_dir(env).join("disk"))
            .map_err(|_| Failure::die("the router VM does not run on this node"))?,
    );
    let mut secret = String::new();
    if READS_SECRET.contains(&script.as_str()) {
        std::io::stdin().read_to_string(&mut secret)?;
        if secret.trim().is_empty() {
            return Err(Failure::with_code(format!("{script}: the password is read from stdin"), 2));
        }
    }
    if let Some(listing) = list(script, &disk)? {
        print!("{listing}");
        return Ok(0);
    }
    let (usage, count) = match script.as_str() {
        "setup_ip_vm.sh" => ("INDEX IP MASK GATEWAY", 4),
        "remove_ip_vm.sh" => ("INDEX", 1),
        "setup_port_forward.sh" => ("EXT_IP EXT_PORT INT_IP INT_PORT", 4),
        "remove_port_forward.sh" => ("EXT_IP EXT_PORT", 2),
        _ => ("", rest.len()),
    };
    if rest.len() != count {
        return Err(Failure::with_code(format!("usage: {script} {usage}"), 2));
    }
    let json_args = serde_json::to_string(rest).map_err(anyhow::Error::from)?;
    append(&disk, &format!("CALL {} {script} {json_args}", now_ms()))?;
    if script == "change_password.sh" {
        set_password(&format!("{LOGIN}:{}", secret.lines().next().unwrap_or_default()))?;
        let shadow = std::fs::read_to_string("/etc/shadow")?;
        let hash = shadow
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{LOGIN}:"))?.split(':').next().map(str::to_string))
            .ok_or_else(|| Failure::die("no shadow entry for cias"))?;
        append(&disk, &format!("PASS {hash}"))?;
    }
    println!("OK");
    Ok(0)
}
