//! Rendered keepalived configurations, checked by the real `keepalived --config-test` inside a
//! throw-away network namespace that has the interfaces the configs name.

use std::net::Ipv4Addr;
use std::path::Path;

use cias_core::peers::Peers;
use cias_core::settings::ClusterSettings;
use cias_core::templates::contexts::{KeepalivedContext, KeepalivedMode};
use cias_core::templates::Templates;
use cias_core::vrrp::Priority;
use cias_tests::netns::Netns;

fn settings() -> ClusterSettings {
    let text = include_str!("../../crates/cias-core/testdata/cias.yaml")
        .replace("lan: vmbr0", "lan: eth0")
        .replace("wan: vmbr0", "wan: eth1");
    ClusterSettings::parse(&text, Path::new("cias.yaml")).unwrap()
}

/// Writes `text` to a file and runs `keepalived --config-test` on it inside `ns`.
fn config_test(ns: &Netns, text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keepalived.conf");
    std::fs::write(&file, text).unwrap();
    ns.exec(&["keepalived", "--config-test", "-e", "-l", "-f", file.to_str().unwrap()]).unwrap()
}

fn render(ctx: &KeepalivedContext) -> String {
    Templates::shipped().render("keepalived/keepalived.conf.j2", ctx).unwrap()
}

#[test]
fn every_rendered_variant_passes_keepalived_config_test() {
    let ns = Netns::with_links("kacfg", &["eth0", "eth1"]).unwrap();
    let s = settings();
    let peers = Peers { own: Ipv4Addr::new(10, 254, 0, 1), others: vec![Ipv4Addr::new(10, 254, 1, 1)] };
    let alone = Peers { own: Ipv4Addr::new(10, 254, 0, 1), others: vec![] };
    let variants = [
        (
            "alone",
            KeepalivedContext::new(&s, "node1", Priority::new(50).unwrap(), KeepalivedMode::Normal, &alone),
        ),
        (
            "normal",
            KeepalivedContext::new(&s, "node1", Priority::new(50).unwrap(), KeepalivedMode::Normal, &peers),
        ),
        (
            "lowest",
            KeepalivedContext::new(&s, "node1", Priority::new(1).unwrap(), KeepalivedMode::Normal, &peers),
        ),
        (
            "highest",
            KeepalivedContext::new(&s, "node1", Priority::new(100).unwrap(), KeepalivedMode::Normal, &peers),
        ),
        (
            "manual switch",
            KeepalivedContext::new(
                &s,
                "node1",
                Priority::new(50).unwrap(),
                KeepalivedMode::ManualSwitch,
                &peers,
            ),
        ),
        (
            "never master",
            KeepalivedContext::new(&s, "node1", Priority::NEVER_MASTER, KeepalivedMode::Normal, &peers),
        ),
    ];
    for (name, ctx) in variants {
        let mut ctx = ctx.unwrap();
        // Scripts must exist and be root-owned for enable_script_security.
        ctx.notify_master = "/bin/true".into();
        ctx.notify_demoted = "/bin/true".into();
        ctx.quorum_check = Some("/bin/true".into());
        let text = render(&ctx);
        let (code, log) = config_test(&ns, &text);
        assert_eq!(code, 0, "{name}: keepalived rejected the config:\n{log}\n{text}");
    }
}

/// The check above is only worth something if keepalived does reject bad files: the seed's
/// priority 999 (keepalived silently falls back to 100) and an interface the node lacks.
#[test]
fn keepalived_config_test_does_reject_what_the_seed_did() {
    let ns = Netns::with_links("kabad", &["eth0", "eth1"]).unwrap();
    let peers = Peers { own: Ipv4Addr::new(10, 254, 0, 1), others: vec![] };
    let mut ctx = KeepalivedContext::new(
        &settings(),
        "node3",
        Priority::new(50).unwrap(),
        KeepalivedMode::Normal,
        &peers,
    )
    .unwrap();
    ctx.notify_master = "/bin/true".into();
    ctx.notify_demoted = "/bin/true".into();
    ctx.quorum_check = Some("/bin/true".into());
    let good = render(&ctx);
    let seed_priority = good.replace("priority 50", "priority 999");
    assert_ne!(config_test(&ns, &seed_priority).0, 0, "priority 999 must be rejected");
    let missing_interface = good.replace("interface eth0", "interface vmbr7");
    assert_ne!(config_test(&ns, &missing_interface).0, 0, "a missing interface must be rejected");
}
