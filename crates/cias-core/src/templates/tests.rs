use super::contexts::*;
use super::*;
use std::net::Ipv4Addr;

use crate::peers::Peers;
use crate::settings::{ClusterSettings, Secret};
use crate::vrrp::Priority;

fn settings() -> ClusterSettings {
    ClusterSettings::sample()
}

/// This node and two others.
fn peers() -> Peers {
    Peers {
        own: Ipv4Addr::new(10, 254, 0, 1),
        others: vec![Ipv4Addr::new(10, 254, 1, 1), Ipv4Addr::new(10, 254, 1, 2)],
    }
}

fn keepalived(priority: u8, mode: KeepalivedMode) -> String {
    let ctx = KeepalivedContext::new(
        &settings(),
        "pve.master-rack.a.0-1.example.com",
        Priority::new(priority).unwrap(),
        mode,
        &peers(),
    )
    .unwrap();
    Templates::shipped().render("keepalived/keepalived.conf.j2", &ctx).unwrap()
}

#[test]
fn keepalived_normal() {
    let text = keepalived(50, KeepalivedMode::Normal);
    assert!(text.contains("    nopreempt\n"));
    insta::assert_snapshot!(text);
}

#[test]
fn keepalived_manual_switch() {
    let text = keepalived(50, KeepalivedMode::ManualSwitch);
    assert!(!text.contains("    nopreempt\n"));
    assert!(text.contains("priority 254\n"));
    insta::assert_snapshot!(text);
}

#[test]
fn keepalived_never_master_has_no_instance() {
    let text = keepalived(0, KeepalivedMode::Normal);
    assert!(!text.contains("vrrp_instance"));
    insta::assert_snapshot!(text);
}

#[test]
fn keepalived_tracks_the_quorum_check() {
    let text = keepalived(100, KeepalivedMode::Normal);
    assert!(text.contains("script \"/usr/sbin/dlll_cias-fence check\""), "{text}");
    assert!(text.contains("track_script {\n        cias_quorum\n    }"), "{text}");
}

#[test]
fn a_never_master_node_cannot_be_switched_to() {
    let err = KeepalivedContext::new(
        &settings(),
        "node9",
        Priority::NEVER_MASTER,
        KeepalivedMode::ManualSwitch,
        &peers(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "node node9 was installed with priority 0 (never master): it cannot be switched to master"
    );
}

#[test]
fn moosefs_files() {
    let password = Secret::new("0123abcd");
    let ctx = MooseFsContext::new(&settings(), vec!["/data/sdb".into(), "/data/sdc".into()], Some(password));
    let files = super::contexts::moosefs_files(&Templates::shipped(), &ctx).unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/etc/mfs/mfsmaster.cfg",
            "/etc/mfs/mfsexports.cfg",
            "/etc/mfs/mfsmetalogger.cfg",
            "/etc/mfs/mfschunkserver.cfg",
            "/etc/mfs/mfshdd.cfg",
            "/etc/mfs/mfsmount.cfg"
        ]
    );
    // The password is only in the files that must hold it, and they are private.
    let secret: Vec<(&str, Option<&str>)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.secret.map(|s| s.mode)))
        .filter(|(_, s)| s.is_some())
        .collect();
    assert_eq!(secret, [("/etc/mfs/mfsexports.cfg", Some("0640")), ("/etc/mfs/mfsmount.cfg", Some("0600"))]);
    for file in files.iter().filter(|f| f.secret.is_none()) {
        assert!(!file.text.contains("0123abcd"), "{}", file.path);
    }
    for file in &files {
        insta::assert_snapshot!(file.path.trim_start_matches("/etc/mfs/").to_string(), file.text);
    }
}

#[test]
fn mfshdd_without_disks_says_so() {
    let ctx = MooseFsContext::new(&settings(), vec![], None);
    let text = Templates::shipped().render("moosefs/mfshdd.cfg.j2", &ctx).unwrap();
    assert!(text.ends_with("# (this node has no data disks)\n"), "{text}");
}

#[test]
fn node_crontab() {
    let ctx = CronContext::new(&settings(), "pve.master-rack.a.0-1.example.com");
    insta::assert_snapshot!(Templates::shipped().render("cron/dlll-cias.cron.j2", &ctx).unwrap());
}

#[test]
fn an_undefined_variable_is_an_error_not_a_blank() {
    let err = Templates::shipped()
        .render("moosefs/mfsmount.cfg.j2", &serde_json::json!({ "master_host": "m" }))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("template 'moosefs/mfsmount.cfg.j2' could not be rendered - "), "{err}");
    assert!(err.contains("undefined"), "{err}");
}

#[test]
fn an_override_replaces_the_shipped_template() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("moosefs")).unwrap();
    std::fs::write(dir.path().join("moosefs/mfsmount.cfg.j2"), "mfsmaster={{ master_host }}\n# site tweak\n")
        .unwrap();
    let templates = Templates::with_overrides(dir.path());
    let ctx = MooseFsContext::new(&settings(), vec![], None);
    assert_eq!(
        templates.render("moosefs/mfsmount.cfg.j2", &ctx).unwrap(),
        "mfsmaster=cias-pve-master\n# site tweak\n"
    );
    // Templates without an override still come from the shipped set.
    assert!(templates.render("moosefs/mfshdd.cfg.j2", &ctx).unwrap().contains("no data disks"));
}

#[test]
fn a_broken_override_names_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("moosefs")).unwrap();
    std::fs::write(dir.path().join("moosefs/mfsmount.cfg.j2"), "{% if %}\n").unwrap();
    let err = Templates::with_overrides(dir.path())
        .render("moosefs/mfsmount.cfg.j2", &MooseFsContext::new(&settings(), vec![], None))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("(from {}/moosefs/mfsmount.cfg.j2)", dir.path().display())), "{err}");
}

#[test]
fn unknown_templates_are_refused() {
    assert_eq!(
        Templates::shipped().render("nope.j2", &()).unwrap_err().to_string(),
        "unknown template 'nope.j2'"
    );
}
