use std::path::Path;

use super::*;

const SAMPLE: &str = include_str!("../../testdata/cias.yaml");

fn parse(text: &str) -> Result<ClusterSettings, SettingsError> {
    ClusterSettings::parse(text, Path::new("/data/cias/cias.yaml"))
}

/// The sample with one line replaced (`from` must occur exactly once).
fn edited(from: &str, to: &str) -> String {
    assert_eq!(SAMPLE.matches(from).count(), 1, "{from}");
    SAMPLE.replace(from, to)
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn the_sample_is_valid_and_round_trips() {
    let settings = parse(SAMPLE).unwrap();
    assert_eq!(settings.external.master_ip, Ipv4Addr::new(192, 168, 56, 101));
    assert_eq!(settings.vm_management_ip(1), Some(Ipv4Addr::new(192, 168, 56, 105)));
    assert_eq!(settings.vm_management_ip(2), None);
    assert_eq!(parse(&settings.to_yaml().unwrap()).unwrap(), settings);
}

#[test]
fn minimal_file_gets_spec_defaults() {
    let minimal = "domain: example.com\nadmin_email: a@example.com\nexternal:\n  network: 192.168.56.0/24\n  gateway: 192.168.56.1\n  master_ip: 192.168.56.101\n  router_proxmox_ip: 192.168.56.102\n  router_nas_ip: 192.168.56.103\n  router_vm_ips: [192.168.56.104]\n";
    let s = parse(minimal).unwrap();
    assert_eq!(s.cluster_name, "DLLL-CIAS");
    assert_eq!(s.internal.master_vip, Ipv4Addr::new(10, 254, 0, 254));
    assert_eq!(s.internal.router_ip, Ipv4Addr::new(10, 0, 0, 254));
    assert_eq!(s.moosefs.exports_network.to_string(), "10.254.0.0/16");
    assert_eq!(s.interfaces.lan, "vmbr0");
}

#[test]
fn unknown_keys_are_rejected_with_file_and_line() {
    let err =
        error(&edited("  gateway: 192.168.56.1\n", "  gateway: 192.168.56.1\n  gatway: 192.168.56.2\n"));
    assert!(err.starts_with("/data/cias/cias.yaml:8: "), "{err}");
    assert!(err.contains("unknown field `gatway`"), "{err}");
}

#[test]
fn a_missing_key_is_named() {
    let err = error(&edited("  router_nas_ip: 192.168.56.103\n", ""));
    assert!(err.contains("missing field `router_nas_ip`"), "{err}");
}

#[test]
fn an_external_ip_outside_its_network_names_file_line_and_field() {
    let err = error(&edited("master_ip: 192.168.56.101", "master_ip: 192.168.57.101"));
    assert_eq!(err, "/data/cias/cias.yaml:8: external.master_ip: 192.168.57.101 is outside the external network 192.168.56.0/24");
}

#[test]
fn the_gateway_must_be_inside_the_network() {
    let err = error(&edited("gateway: 192.168.56.1", "gateway: 10.0.0.1"));
    assert_eq!(
        err,
        "/data/cias/cias.yaml:7: external.gateway: 10.0.0.1 is outside the external network 192.168.56.0/24"
    );
}

#[test]
fn external_addresses_must_differ() {
    let err = error(&edited("router_nas_ip: 192.168.56.103", "router_nas_ip: 192.168.56.102"));
    assert!(
        err.contains(
            ":10: external.router_nas_ip: 192.168.56.102 is already used by external.router_proxmox_ip"
        ),
        "{err}"
    );
    let err = error(&edited("    - 192.168.56.105", "    - 192.168.56.101"));
    assert!(
        err.contains(":13: external.router_vm_ips[1]: 192.168.56.101 is already used by external.master_ip"),
        "{err}"
    );
}

#[test]
fn network_and_broadcast_addresses_are_refused() {
    let err = error(&edited("    - 192.168.56.105", "    - 192.168.56.255"));
    assert!(
        err.contains("external.router_vm_ips[1]: 192.168.56.255 is the network or broadcast address"),
        "{err}"
    );
}

#[test]
fn the_external_network_must_not_overlap_the_internal_one() {
    let text = SAMPLE.replace("192.168.56.", "10.9.9.");
    let err = error(&text);
    assert!(err.contains("external.network: 10.9.9.0/24 overlaps the internal network 10.0.0.0/8"), "{err}");
}

#[test]
fn vm_management_ip_count_is_1_to_251() {
    let none =
        edited("  router_vm_ips:\n    - 192.168.56.104\n    - 192.168.56.105\n", "  router_vm_ips: []\n");
    assert!(error(&none).contains("0 VM-management IPs given; there must be 1..251"));
    let many: String = (0..252).map(|i| format!("    - 172.16.{}.{}\n", i / 200, i % 200 + 1)).collect();
    let text = SAMPLE
        .replace("192.168.56.0/24", "172.16.0.0/16")
        .replace("192.168.56.", "172.16.9.")
        .replace("    - 172.16.9.104\n    - 172.16.9.105\n", &many);
    assert!(error(&text).contains("252 VM-management IPs given"), "{}", error(&text));
}

#[test]
fn internal_service_addresses_must_stay_out_of_the_plan_ranges() {
    let err = error(&edited("master_vip: 10.254.0.254", "master_vip: 10.254.1.7"));
    assert_eq!(
        err,
        "/data/cias/cias.yaml:16: internal.master_vip: 10.254.1.7 is a node or NAS address of the plan"
    );
    let err = error(&edited("router_ip: 10.0.0.254", "router_ip: 10.3.2.1"));
    assert!(err.contains(":15: internal.router_ip: 10.3.2.1 is a VM address of the VMID plan"), "{err}");
    let err = error(&edited("router_ip: 10.0.0.254", "router_ip: 10.251.0.9"));
    assert!(err.contains("inside the DHCP range"), "{err}");
    let err = error(&edited("router_ip: 10.0.0.254", "router_ip: 172.16.0.1"));
    assert!(err.contains("outside the internal network 10.0.0.0/8"), "{err}");
}

#[test]
fn the_exports_network_must_reach_the_nodes() {
    let err = error(&edited("exports_network: 10.254.0.0/16", "exports_network: 10.1.0.0/16"));
    assert!(err.contains(":24: moosefs.exports_network: 10.1.0.0/16 must contain the master VIP"), "{err}");
    // Racks 2..5 must be able to mount too.
    let err = error(&edited("exports_network: 10.254.0.0/16", "exports_network: 10.254.0.0/23"));
    assert!(err.contains("moosefs.exports_network: 10.254.0.0/23 must contain"), "{err}");
    // Wider than the nodes' network would let VMs mount the cluster's storage: a new cluster
    // is refused it; an existing one keeps loading (its reconcile loop must run).
    let wide = parse(&edited("exports_network: 10.254.0.0/16", "exports_network: 10.0.0.0/8")).unwrap();
    let problems = wide.new_cluster_problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        problems[0].message,
        "10.0.0.0/8 must lie inside the nodes' network 10.254.0.0/16: only nodes may mount MooseFS"
    );
}

#[test]
fn names_that_go_into_configs_keep_to_a_strict_charset() {
    for bad in ["vmbr0;x", "vmbr 0", "-vmbr0", "br\u{e9}0", "vmbr0\n"] {
        let err = error(&edited("lan: vmbr0", &format!("lan: {bad:?}")));
        assert!(err.contains("is not a usable interface name"), "{bad}: {err}");
    }
    assert!(crate::settings::check_interface_name("enp3s0f1.10").is_ok());
    let odd = parse(&edited("host: localhost", "host: \"mail;rm -rf\"")).unwrap();
    let problems = odd.new_cluster_problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].message.contains("'mail;rm -rf' is not a host name"), "{problems:?}");
}

#[test]
fn other_fields_are_checked() {
    assert!(error(&edited("cluster_name: DLLL-CIAS", "cluster_name: A-VERY-LONG-CLUSTER-NAME"))
        .contains(":2: cluster_name:"));
    assert!(error(&edited("domain: example.com", "domain: Example..com")).contains(":3: domain:"));
    assert!(
        error(&edited("admin_email: admin@example.com", "admin_email: admin")).contains(":4: admin_email:")
    );
    assert!(error(&edited("virtual_router_id: 51", "virtual_router_id: 300"))
        .contains(":21: vrrp.virtual_router_id: 300 must be 1..255"));
    assert!(error(&edited("lan: vmbr0", "lan: a-very-long-interface")).contains(":18: interfaces.lan:"));
    let err = error(&edited("disk_filesystem: ext4", "disk_filesystem: ext3"));
    assert!(err.contains(":27: ") && err.contains("unknown variant `ext3`"), "{err}");
}

#[test]
fn the_placement_memory_limit_defaults_to_90_percent_and_is_checked() {
    assert_eq!(parse(SAMPLE).unwrap().placement.max_memory_percent, 90);
    let with = |percent: &str| format!("{SAMPLE}placement:\n  max_memory_percent: {percent}\n");
    assert_eq!(parse(&with("100")).unwrap().placement.max_memory_percent, 100);
    for bad in ["0", "101"] {
        let err = error(&with(bad));
        assert!(err.contains(&format!(":36: placement.max_memory_percent: {bad} must be 1..100")), "{err}");
    }
}

#[test]
fn the_node_removal_timer_defaults_to_30_minutes_and_is_checked() {
    assert_eq!(parse(SAMPLE).unwrap().watch.node_removal(), std::time::Duration::from_secs(1800));
    let with = |secs: &str| format!("{SAMPLE}watch:\n  node_removal_secs: {secs}\n");
    assert_eq!(parse(&with("60")).unwrap().watch.node_removal_secs, 60);
    let err = error(&with("0"));
    assert!(err.contains(":36: watch.node_removal_secs: must be at least 1 second"), "{err}");
}

#[test]
fn an_unreadable_file_is_named() {
    let err = ClusterSettings::load(Path::new("/nonexistent/cias.yaml")).unwrap_err().to_string();
    assert!(err.starts_with("cannot read /nonexistent/cias.yaml - "), "{err}");
}

#[test]
fn a_missing_file_names_its_cause_once() {
    let err = ClusterSettings::load(Path::new("/nonexistent/cias.yaml")).unwrap_err();
    // What every command prints: the message and its chain of causes.
    let mut printed = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        printed.push_str(&format!(": {c}"));
        cause = c.source();
    }
    assert_eq!(printed.matches("os error 2").count(), 1, "{printed}");
    assert!(printed.starts_with("cannot read /nonexistent/cias.yaml - "), "{printed}");
}

#[test]
fn uplink_targets_are_a_list_and_an_older_single_target_still_reads() {
    let one = parse(SAMPLE).unwrap();
    assert_eq!(one.uplink_targets(), [Ipv4Addr::new(192, 168, 56, 1)], "`target:` of an older file");
    let many = parse(&edited("  target: 192.168.56.1\n", "  targets: [10.254.255.1, 9.9.9.9]\n")).unwrap();
    assert_eq!(many.uplink_targets(), [Ipv4Addr::new(10, 254, 255, 1), Ipv4Addr::new(9, 9, 9, 9)]);
    let none = parse(&edited("  target: 192.168.56.1\n", "")).unwrap();
    assert_eq!(
        none.uplink_targets(),
        [Ipv4Addr::new(192, 168, 56, 1), Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(1, 1, 1, 1)],
        "by default the external gateway and two public resolvers"
    );
    let err = error(&edited("  target: 192.168.56.1\n", "  targets: [127.0.0.1]\n"));
    assert!(err.contains("uplink.targets: 127.0.0.1 is on this machine itself"), "{err}");
}
