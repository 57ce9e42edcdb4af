//! The examples of the issue, run against the built binary.

use std::time::Instant;

use cias_core::host::{Command, Host, LocalHost, Output};

/// Runs the binary under test through the toolkit's one execution module.
fn run(args: &[&str]) -> Output {
    let argv: Vec<&str> =
        std::iter::once(env!("CARGO_BIN_EXE_dlll_cias-vmid-map")).chain(args.iter().copied()).collect();
    let cmd = Command::query_argv(&argv);
    LocalHost::new("test").execute(&cmd).unwrap_or_else(|e| panic!("{e}"))
}

const SETTINGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../cias-core/testdata/cias.yaml");

#[test]
fn describes_a_vmid() {
    let out = run(&["10501"]);
    assert!(out.success());
    let text = out.stdout.clone();
    assert!(text.contains("internal IP:     10.10.5.1\n"), "{text}");
    assert!(text.contains("external index:  10\n"), "{text}");
    assert!(text.contains("port block:      501 (external ports 50100-50199)\n"), "{text}");
    assert!(text.contains("ssh:             <VM IP 10>:50122 -> 10.10.5.1:22\n"), "{text}");
    assert!(text.contains("rdp:             <VM IP 10>:50189 -> 10.10.5.1:3389\n"), "{text}");
}

#[test]
fn json_has_the_documented_fields() {
    let out = run(&["--json", "10501"]);
    assert_eq!(
        out.stdout.clone(),
        "{\"vmid\":10501,\"internal_ip\":\"10.10.5.1\",\"external_index\":10,\"port_block\":501,\"ports\":{\"http\":50180,\"https\":50143,\"ssh\":50122,\"rdp\":50189}}\n"
    );
}

#[test]
fn the_external_ip_comes_from_the_settings() {
    let out = run(&["--config", SETTINGS, "--json", "1501"]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["external_ip"], "192.168.56.105");
    let text = run(&["--config", SETTINGS, "1501"]).stdout;
    assert!(text.contains("http:            192.168.56.105:50180 -> 10.1.5.1:80"), "{text}");
    let text = run(&["--config", SETTINGS, "7101"]).stdout;
    assert!(
        text.contains(
            "external IP:     not configured (the settings list 2 VM-management IPs, indexes 0..1)"
        ),
        "{text}"
    );
}

#[test]
fn ip_to_vmid() {
    let out = run(&["--ip", "10.10.5.1", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["vmid"], 10501);
    assert!(run(&["--ip", "10.9.1.51"]).stdout.starts_with("VMID:            9151\n"));
}

#[test]
fn port_to_vmid() {
    let text = run(&["--port", "15122", "--index", "9"]).stdout;
    assert!(text.starts_with("VMID:            9151\n"), "{text}");
    assert!(text.contains("port 15122:      ssh (port 22 in the VM)"), "{text}");
}

#[test]
fn list_prints_every_vmid_quickly() {
    let start = Instant::now();
    let out = run(&["--list"]);
    let elapsed = start.elapsed();
    let text = out.stdout.clone();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 124_245);
    assert_eq!(lines[0], "101\t10.0.1.1");
    assert_eq!(lines[lines.len() - 1], "250599\t10.250.5.99");
    // Generous bound for a debug build on a busy CI machine; the release target is far below.
    assert!(elapsed.as_secs_f64() < 5.0, "--list took {elapsed:?}");
    let json: serde_json::Value = serde_json::from_str(&run(&["--list", "--json"]).stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 124_245);
}

#[test]
fn bad_input_exits_2_with_one_line() {
    for (args, expected) in [
        (&["1100"][..], "dlll_cias-vmid-map: VMID 1100 is invalid: the last two digits must be 01..99\n"),
        (&["100"][..], "dlll_cias-vmid-map: VMID 100 is reserved for the router (Zentyal) and is not a normal VM\n"),
        (&["650"][..], "dlll_cias-vmid-map: VMID 650 is invalid: the hundreds digit must be 1..5\n"),
        (&["251101"][..], "dlll_cias-vmid-map: VMID 251101 is invalid: VMIDs for VMs run from 101 to 250599\n"),
        (&["--ip", "10.254.1.1"][..], "dlll_cias-vmid-map: 10.254.1.1 is not a VM address: 10.254.x.x holds the Proxmox nodes and the master VIP\n"),
        (&["--ip", "banana"][..], "dlll_cias-vmid-map: 'banana' is not an IPv4 address: invalid IPv4 address syntax\n"),
        (&["--port", "8080", "--index", "0"][..], "dlll_cias-vmid-map: port 8080 is not a forwarded VM port: forwarded ports run from 10100 to 59999\n"),
    ] {
        let out = run(args);
        assert_eq!(out.code, Some(2), "{args:?}");
        assert_eq!(out.stderr.clone(), expected, "{args:?}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_broken_settings_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cias.yaml");
    std::fs::write(&file, "domain: example.com\nbogus: 1\n").unwrap();
    let out = run(&["--config", file.to_str().unwrap(), "101"]);
    assert_eq!(out.code, Some(2));
    let err = out.stderr.clone();
    assert!(
        err.starts_with(&format!("dlll_cias-vmid-map: {}:2: unknown field `bogus`", file.display())),
        "{err}"
    );
}

#[test]
fn help_explains_the_plan() {
    let text = run(&["--help"]).stdout;
    assert!(text.contains("X*1000 + A*100 + B"), "{text}");
    assert!(text.contains("--list"));
}
