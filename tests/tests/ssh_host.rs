//! `SshHost` against a real sshd on loopback: key auth, host-key pinning, first contact
//! (scanning and fingerprints), the password path, stdin secrets.
//!
//! A successful password login cannot be tested here without giving a real account a password;
//! the installer's lab tests do it (lab nodes allow root password login).

use std::time::Duration;

use cias_core::host::{scan_host_key, swap_file, Command, Host, HostError, HostKeyPolicy, SshAuth, SshHost};
use cias_core::settings::Secret;
use cias_tests::sshd::{fingerprint_of, keygen, Options, Sshd};

fn server() -> Sshd {
    Sshd::start().expect("sshd starts")
}

/// A session to `sshd` as root with its real host key pinned.
fn connect(sshd: &Sshd) -> SshHost {
    SshHost::connect(sshd.target(sshd.pinned_known_hosts().unwrap()))
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()))
}

#[test]
fn key_login_with_a_pinned_host_key_runs_argv_exactly() {
    let sshd = server();
    let host = SshHost::connect(sshd.target(sshd.pinned_known_hosts().unwrap()))
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    let out =
        host.run(&Command::from_argv(&["printf", "%s|", "two words", "it's", "$(id)", "*", ""])).unwrap();
    assert_eq!(out.stdout, "two words|it's|$(id)|*||");
    assert_eq!(host.run(&Command::from_argv(&["id", "-u"])).unwrap().stdout, "0\n");
}

#[test]
fn the_remote_environment_is_pinned() {
    let sshd = server();
    let host = connect(&sshd);
    let env = host.run(&Command::from_argv(&["env"])).unwrap().stdout;
    assert!(env.lines().any(|l| l == format!("PATH={}", cias_core::host::SAFE_PATH)), "{env}");
    assert!(env.lines().any(|l| l == "LC_ALL=C"), "{env}");
}

#[test]
fn secrets_travel_over_stdin_not_argv() {
    let sshd = server();
    let host = connect(&sshd);
    let secret = Secret::new("dlll@nccu 'quoted' $HOME");
    // The remote side sees the secret on stdin, and its argv (visible in ps) does not hold it.
    let cmd = Command::from_argv(&[
        "sh",
        "-c",
        "read -r pw; echo \"got:$pw\"; cat /proc/$$/cmdline | tr '\\0' ' '",
    ])
    .stdin_secret(&secret);
    let out = host.run(&cmd).unwrap().stdout;
    assert!(out.starts_with("got:dlll@nccu 'quoted' $HOME\n"), "{out}");
    assert!(!out.lines().nth(1).unwrap_or_default().contains("dlll@nccu"), "{out}");
    assert!(!cmd.to_string().contains("dlll@nccu"));
}

#[test]
fn failures_name_host_command_status_and_stderr() {
    let sshd = server();
    let host = connect(&sshd);
    let err = host.run(&Command::from_argv(&["sh", "-c", "echo 'no quorum' >&2; exit 2"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`sh -c 'echo '\\''no quorum'\\'' >&2; exit 2'` on sshtest failed with exit status 2 - no quorum"
    );
    let out = host.execute(&Command::from_argv(&["sh", "-c", "echo out; echo err >&2; exit 7"])).unwrap();
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (Some(7), "out\n", "err\n"));
}

#[test]
fn a_file_written_over_ssh_is_exact_and_a_stale_swap_writes_nothing() {
    let sshd = server();
    let host = connect(&sshd);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.yaml");
    let path = path.to_str().unwrap();
    let text = "entries:\n- hostname: 'it''s'\n  note: $(id) \"*\"\n\n";
    host.run(&Command::write_file(path, text, "0644")).unwrap();
    let read = host.run(&Command::query_argv(&["cat", path])).unwrap().stdout;
    assert_eq!(read, text);
    assert!(swap_file(&host, path, &read, "entries: []\n", "0644").unwrap());
    assert!(!swap_file(&host, path, &read, "entries: [late]\n", "0644").unwrap(), "read before the swap");
    assert_eq!(std::fs::read_to_string(path).unwrap(), "entries: []\n");
}

#[test]
fn large_stdout_and_stderr_together_do_not_stall() {
    let sshd = server();
    let host = connect(&sshd);
    let script = "head -c 3000000 /dev/zero | tr '\\0' e >&2; head -c 3000000 /dev/zero | tr '\\0' o";
    let out = host.run(&Command::from_argv(&["sh", "-c", script])).unwrap();
    assert_eq!((out.stdout.len(), out.stderr.len()), (3_000_000, 3_000_000));
}

#[test]
fn a_slow_command_times_out() {
    let sshd = server();
    let host = connect(&sshd);
    let err = host
        .run(&Command::from_argv(&["sleep", "30"]).timeout(std::time::Duration::from_secs(1)))
        .unwrap_err();
    assert!(matches!(err, HostError::Timeout { .. }), "{err}");
    assert_eq!(err.to_string(), "`sleep 30` on sshtest timed out after 1s");
}

#[test]
fn a_changed_host_key_is_refused() {
    let sshd = server();
    let other = sshd.dir().join("impostor_key");
    keygen(&other).unwrap();
    let impostor = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let known_hosts = sshd.known_hosts_with("changed", &impostor).unwrap();
    let err = SshHost::connect(sshd.target(known_hosts)).unwrap_err();
    assert!(matches!(err, HostError::HostKeyChanged { .. }), "{err}");
    assert!(err.to_string().starts_with("host key of sshtest does not match the one pinned in "), "{err}");
}

#[test]
fn an_unknown_host_key_is_refused_without_a_prompt() {
    let sshd = server();
    let empty = sshd.dir().join("known_hosts.empty");
    std::fs::write(&empty, "").unwrap();
    let err = SshHost::connect(sshd.target(empty)).unwrap_err();
    assert!(matches!(err, HostError::HostKeyUnknown { .. }), "{err}");
    let missing = sshd.dir().join("known_hosts.missing");
    let err = SshHost::connect(sshd.target(missing)).unwrap_err();
    assert!(matches!(err, HostError::HostKeyUnknown { .. }), "{err}");
}

#[test]
fn a_key_the_server_does_not_accept_is_an_auth_error() {
    let sshd = server();
    let stranger = sshd.dir().join("stranger_key");
    keygen(&stranger).unwrap();
    let mut target = sshd.target(sshd.pinned_known_hosts().unwrap());
    target.auth = SshAuth::Key(stranger);
    let err = SshHost::connect(target).unwrap_err();
    assert!(err.to_string().starts_with("cannot log in to sshtest as root with key "), "{err}");
}

#[test]
fn nothing_listening_is_a_connect_error() {
    let sshd = server();
    let mut target = sshd.target(sshd.pinned_known_hosts().unwrap());
    target.port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = SshHost::connect(target).unwrap_err();
    assert!(err.to_string().starts_with("cannot connect to sshtest - 127.0.0.1:"), "{err}");
}

fn scan(sshd: &Sshd) -> cias_core::host::ScannedKey {
    scan_host_key("127.0.0.1", sshd.port(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()))
}

#[test]
fn a_scanned_fingerprint_is_what_ssh_keygen_prints() {
    let sshd = server();
    let key = scan(&sshd);
    assert_eq!(key.fingerprint(), sshd.fingerprint().unwrap());
    assert_eq!(key.key_type(), "ssh-ed25519");
}

/// The key administrators read with `ssh-keygen -lf` and the lab pins, whatever libssh2's own
/// preference.
#[test]
fn ed25519_is_the_key_shown_when_the_server_also_has_ecdsa() {
    let sshd = Sshd::start_with(Options { ecdsa_host_key: true, ..Options::default() }).unwrap();
    assert_eq!(scan(&sshd).fingerprint(), sshd.fingerprint().unwrap());
    connect(&sshd);
}

#[test]
fn the_expected_fingerprint_lets_the_login_through() {
    let sshd = server();
    let mut target = sshd.target(sshd.dir().join("known_hosts.unused"));
    target.host_key = HostKeyPolicy::ExpectFingerprint(sshd.fingerprint().unwrap());
    let host = SshHost::connect(target).unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(host.run(&Command::from_argv(&["id", "-u"])).unwrap().stdout, "0\n");
}

#[test]
fn another_fingerprint_is_refused_naming_both() {
    let sshd = server();
    let other = sshd.dir().join("impostor_key");
    keygen(&other).unwrap();
    let expected = fingerprint_of(&other.with_extension("pub")).unwrap();
    let mut target = sshd.target(sshd.dir().join("known_hosts.unused"));
    target.host_key = HostKeyPolicy::ExpectFingerprint(expected.clone());
    let err = SshHost::connect(target).unwrap_err();
    assert!(matches!(err, HostError::Connect { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to sshtest - its ssh-ed25519 host key at 127.0.0.1 is {}, but the expected fingerprint \
             is {expected}; refusing to log in. Check that this is the right node (on it: ssh-keygen -lf \
             /etc/ssh/ssh_host_ed25519_key.pub)",
            sshd.fingerprint().unwrap()
        )
    );
}

#[test]
fn a_scanned_line_pins_the_host() {
    let sshd = server();
    let key = scan(&sshd);
    let written = sshd.dir().join("known_hosts.written");
    std::fs::write(&written, format!("{}\n", key.known_hosts_line(&["sshtest", "127.0.0.1"]))).unwrap();
    connect_pinned(&sshd, written);
    // The same through append_to, into a file that already pins another host.
    let appended = sshd.dir().join("known_hosts.appended");
    std::fs::write(
        &appended,
        "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH\n",
    )
    .unwrap();
    key.append_to(&appended, &["127.0.0.1"]).unwrap();
    connect_pinned(&sshd, appended);
}

fn connect_pinned(sshd: &Sshd, known_hosts: std::path::PathBuf) {
    let host = SshHost::connect(sshd.target(known_hosts)).unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(host.run(&Command::from_argv(&["true"])).unwrap().code, Some(0));
}

#[test]
fn scanning_nothing_is_a_connect_error_naming_the_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = scan_host_key("127.0.0.1", port, Duration::from_secs(5)).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!("cannot connect to 127.0.0.1 - 127.0.0.1:{port} - ")),
        "{err}"
    );
}

#[test]
fn a_server_without_password_login_says_so() {
    let sshd = server();
    let mut target = sshd.target(sshd.pinned_known_hosts().unwrap());
    target.auth = SshAuth::Password(Secret::new("not-the-password"));
    let err = SshHost::connect(target).unwrap_err();
    assert!(matches!(err, HostError::Auth { .. }), "{err}");
    assert!(
        err.to_string().starts_with(
            "cannot log in to sshtest as root with a password - the server does not offer password login (it offers: publickey)"
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("not-the-password"));
}

#[test]
fn a_wrong_password_is_an_auth_error_that_does_not_show_it() {
    let sshd = Sshd::start_with(Options { password_login: true, ..Options::default() }).unwrap();
    let mut target = sshd.target(sshd.pinned_known_hosts().unwrap());
    // Wrong whatever root's password is: sshd refuses it (or root has none it accepts).
    target.auth = SshAuth::Password(Secret::new("cias-test-wrong-\u{1F511}-password"));
    let shown = format!("{target:?}");
    assert!(!shown.contains("cias-test-wrong"), "{shown}");
    let err = SshHost::connect(target).unwrap_err();
    assert!(matches!(err, HostError::Auth { .. }), "{err}");
    assert!(err.to_string().starts_with("cannot log in to sshtest as root with a password - "), "{err}");
    assert!(err.to_string().ends_with("; check the password"), "{err}");
    assert!(!err.to_string().contains("cias-test-wrong"), "{err}");
}
