//! What the tool prints: text for people, JSON for scripts.

use std::io::Write;
use std::net::Ipv4Addr;

use anyhow::Result;
use cias_core::netplan::ports::{Forward, PortBlock, Service};
use cias_core::netplan::Vmid;
use cias_core::settings::ClusterSettings;
use serde::Serialize;

/// Everything known about one VM's addresses. Field order is the JSON order.
#[derive(Debug, Serialize)]
pub struct VmInfo {
    vmid: u32,
    internal_ip: Ipv4Addr,
    external_index: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_ip: Option<Ipv4Addr>,
    port_block: PortBlock,
    ports: Ports,
    /// How many VM-management IPs the settings define (for the "not configured" message).
    #[serde(skip)]
    configured_ips: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Ports {
    http: u16,
    https: u16,
    ssh: u16,
    rdp: u16,
}

impl VmInfo {
    pub fn new(vmid: Vmid, settings: Option<&ClusterSettings>) -> Self {
        let block = PortBlock::of(vmid);
        Self {
            vmid: vmid.number(),
            internal_ip: vmid.internal_ip(),
            external_index: vmid.external_index(),
            external_ip: settings.and_then(|s| s.vm_management_ip(vmid.external_index())),
            port_block: block,
            ports: Ports {
                http: block.service_port(Service::Http),
                https: block.service_port(Service::Https),
                ssh: block.service_port(Service::Ssh),
                rdp: block.service_port(Service::Rdp),
            },
            configured_ips: settings.map(|s| s.external.router_vm_ips.len()),
        }
    }
}

pub fn text(out: &mut impl Write, info: &VmInfo, port: Option<(u32, Forward)>) -> Result<()> {
    writeln!(out, "VMID:            {}", info.vmid)?;
    writeln!(out, "internal IP:     {}", info.internal_ip)?;
    let external = match (info.external_ip, info.configured_ips) {
        (Some(ip), _) => ip.to_string(),
        (None, Some(n)) => {
            format!("not configured (the settings list {n} VM-management IPs, indexes 0..{})", n - 1)
        }
        (None, None) => "unknown (no cluster settings; use --config FILE)".to_string(),
    };
    writeln!(out, "external index:  {}", info.external_index)?;
    writeln!(out, "external IP:     {external}")?;
    let block = info.port_block;
    writeln!(out, "port block:      {block} (external ports {}-{})", block.port(0), block.port(99))?;
    let host = info
        .external_ip
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| format!("<VM IP {}>", info.external_index));
    for service in Service::ALL {
        writeln!(
            out,
            "{:<16} {host}:{} -> {}:{}",
            format!("{}:", service.name()),
            block.service_port(service),
            info.internal_ip,
            service.vm_port()
        )?;
    }
    if let Some((port, forward)) = port {
        let what = match forward.service {
            Some(service) => format!("{} (port {} in the VM)", service.name(), service.vm_port()),
            None => format!("custom forward {:02} (not a well-known service)", forward.suffix),
        };
        writeln!(out, "port {port}:      {what}")?;
    }
    Ok(())
}

pub fn json(out: &mut impl Write, info: &VmInfo) -> Result<()> {
    serde_json::to_writer(&mut *out, info)?;
    writeln!(out)?;
    Ok(())
}

/// Every valid VMID, ascending: `VMID<TAB>internal IP` lines, or one JSON array.
pub fn list(out: &mut impl Write, as_json: bool) -> Result<()> {
    if as_json {
        write!(out, "[")?;
        for (i, vmid) in Vmid::all().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(out, "{sep}{{\"vmid\":{vmid},\"internal_ip\":\"{}\"}}", vmid.internal_ip())?;
        }
        writeln!(out, "]")?;
    } else {
        for vmid in Vmid::all() {
            writeln!(out, "{vmid}\t{}", vmid.internal_ip())?;
        }
    }
    Ok(())
}
