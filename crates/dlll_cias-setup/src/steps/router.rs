//! The router VM (VMID 100, Zentyal): restored from the archive in the management directory,
//! started, its factory password replaced, its management IPs and the administrator account
//! set through its own scripts over SSH; then its first backup and the node's local copy.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cias_core::guest_firewall;
use cias_core::host::{Command, DryRunHost, Host};
use cias_core::paths::{BIN_DIR, MANAGEMENT_DIR, SHARED_MANAGEMENT_DIR};
use cias_core::proxmox::pvesh::{self, VmResource};
use cias_core::router::{Change, KNOWN_HOSTS, LOGIN};
use cias_core::settings::Secret;

use crate::ctx::Ctx;
use crate::node::Role;
use crate::preflight::port_open;
use crate::remote;
use crate::steps::management::{newest_router_archive, ROUTER_DIR};
use crate::ui;

const VMID: &str = "100";
const FACTORY_PASSWORD: &str = "dlll@nccu";

fn router_vm(ctx: &Ctx) -> Result<Option<VmResource>> {
    let json = ctx.local.run(&pvesh::vm_resources_command())?.stdout;
    let vms: Vec<VmResource> = pvesh::parse("pvesh get /cluster/resources", &json)?;
    Ok(vms.into_iter().find(|v| v.vmid == 100))
}

/// The router archive: the one copied into the management directory (a dry run has not
/// copied it yet, so it names the given one).
fn archive(ctx: &Ctx) -> Result<String> {
    match (newest_router_archive(ctx.local.as_ref())?, &ctx.router_archive) {
        (_, Some(given)) if ctx.dry_run => Ok(given.display().to_string()),
        (Some(newest), _) => Ok(newest),
        (None, _) => bail!("no router archive in {ROUTER_DIR}: put the delivered archive there"),
    }
}

pub fn restore(ctx: &mut Ctx) -> Result<()> {
    let router_ip = ctx.settings.internal.router_ip.to_string();
    match router_vm(ctx)? {
        Some(vm) if vm.node != ctx.node.name => {
            bail!(
                "VM 100 already exists on node '{}': this cannot be the first node of a new cluster",
                vm.node
            )
        }
        Some(_) => {}
        None => {
            let archive = archive(ctx)?;
            ctx.local.run(
                &Command::from_argv(&["qmrestore", &archive, VMID, "--storage", "a_mfs"])
                    .timeout(Duration::from_secs(3600)),
            )?;
        }
    }
    // Anti-spoofing before it first runs (SPEC section 8): it may claim no node's address.
    let vm = [(ctx.node.name.clone(), 100)];
    let plan = guest_firewall::plan(&vm, &guest_firewall::observe(ctx.local.as_ref())?, &ctx.settings);
    for fix in &plan.fixes {
        guest_firewall::apply(ctx.local.as_ref(), fix)?;
    }
    if router_vm(ctx)?.is_none_or(|vm| vm.status != "running") {
        ctx.run(&["qm", "start", VMID])?;
    }
    ctx.wait_until("the router to answer SSH at its LAN address", Duration::from_secs(600), || {
        port_open(ctx.local.as_ref(), &router_ip, 22)
    })
}

/// The router's SSH session as `cias` with `password`; `None` when the password is refused.
fn login(ctx: &Ctx, password: &Secret) -> Result<Option<Arc<dyn Host>>> {
    let pinned = format!("{MANAGEMENT_DIR}/{}", KNOWN_HOSTS);
    remote::password_login(&ctx.settings.internal.router_ip.to_string(), LOGIN, password, &pinned)
}

pub fn configure(ctx: &mut Ctx) -> Result<()> {
    let new_password =
        ctx.secrets.router_login_password.clone().context("no router login password in the secrets")?;
    let router: Arc<dyn Host> = if ctx.dry_run {
        Arc::new(DryRunHost::new("cias-router").with_sink(ui::dry_run_command))
    } else {
        // First contact with a VM this installer just restored on its own bridge: pin its key;
        // later contacts are checked against it.
        let pinned = format!("{MANAGEMENT_DIR}/{}", KNOWN_HOSTS);
        if !ctx.test(&["test", "-e", &pinned])? {
            let ip = ctx.settings.internal.router_ip.to_string();
            let line = remote::scan(&ip)?.known_hosts_line(&[ip.as_str(), "cias-router"]);
            ctx.write(&pinned, &format!("{line}\n"), "0644")?;
            // Where the other nodes find it (dlll_cias-router runs on any node).
            ctx.write(&format!("{SHARED_MANAGEMENT_DIR}/{}", KNOWN_HOSTS), &format!("{line}\n"), "0644")?;
        }
        match login(ctx, &new_password)? {
            Some(session) => session,
            None => {
                let factory = login(ctx, &Secret::new(FACTORY_PASSWORD))?
                    .context("the router accepts neither its factory password nor ours")?;
                factory.run(&Command::from_argv(&["change_password.sh"]).stdin_secret(&new_password))?;
                login(ctx, &new_password)?.context("the router refuses the password just set")?
            }
        }
    };
    if ctx.dry_run {
        router.run(&Command::from_argv(&["change_password.sh"]).stdin_secret(&new_password))?;
    }
    let ext = &ctx.settings.external;
    let mask = ext.network.netmask().to_string();
    let gateway = ext.gateway.to_string();
    let (proxmox_ip, nas_ip) = (ext.router_proxmox_ip.to_string(), ext.router_nas_ip.to_string());
    router.run(&Command::from_argv(&["setup_ip_proxmox.sh", &proxmox_ip, &mask, &gateway]))?;
    router.run(&Command::from_argv(&["setup_ip_nas.sh", &nas_ip, &mask, &gateway]))?;
    for (index, ip) in ext.router_vm_ips.iter().enumerate() {
        let index = u8::try_from(index).expect("at most 251 VM-management IPs (settings validation)");
        router.run(&Change::SetVmIp { index, ip: *ip }.command(ext.network.netmask(), ext.gateway))?;
    }
    let user = ctx.node.router_admin_user.clone().context("no router administrator account name")?;
    router.run(
        &Command::from_argv(&["create_user.sh", &user]).stdin_secret(&ctx.secrets.router_admin_password),
    )?;
    Ok(())
}

/// Starts in the background: on the first node a router backup then its local copy; on the
/// others the local copy (`/var/lib/vz/dump/zentyal.tar.vma`, used when MooseFS is down).
pub fn backup(ctx: &mut Ctx) -> Result<()> {
    let tool = format!("{BIN_DIR}/dlll_cias-backup-zentyal");
    if !ctx.test(&["test", "-x", &tool])? {
        bail!("{tool} is missing: install all dlll_cias-* binaries into {BIN_DIR} before running setup");
    }
    let mut argv = vec!["systemd-run", "--collect", "--description=dlll-cias router backup", tool.as_str()];
    if ctx.node.role == Role::First {
        argv.push("--backup");
    }
    argv.push("--local-copy");
    ctx.run(&argv)?;
    Ok(())
}
