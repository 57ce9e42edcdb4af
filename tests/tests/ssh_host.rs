//! `SshHost` against a real sshd on loopback: key auth, host-key pinning, stdin secrets.

use cias_core::host::{Command, Host, HostError, SshHost};
use cias_core::settings::Secret;
use cias_tests::sshd::{keygen, Sshd};

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
    let out = host.run(&Command::new("printf").args(["%s|", "two words", "it's", "$(id)", "*", ""])).unwrap();
    assert_eq!(out.stdout, "two words|it's|$(id)|*||");
    assert_eq!(host.run(&Command::new("id").arg("-u")).unwrap().stdout, "0\n");
}

#[test]
fn the_remote_environment_is_pinned() {
    let sshd = server();
    let host = connect(&sshd);
    let env = host.run(&Command::new("env")).unwrap().stdout;
    assert!(env.lines().any(|l| l == format!("PATH={}", cias_core::host::SAFE_PATH)), "{env}");
    assert!(env.lines().any(|l| l == "LC_ALL=C"), "{env}");
}

#[test]
fn secrets_travel_over_stdin_not_argv() {
    let sshd = server();
    let host = connect(&sshd);
    let secret = Secret::new("dlll@nccu 'quoted' $HOME");
    // The remote side sees the secret on stdin, and its argv (visible in ps) does not hold it.
    let cmd = Command::new("sh")
        .args(["-c", "read -r pw; echo \"got:$pw\"; cat /proc/$$/cmdline | tr '\\0' ' '"])
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
    let err = host.run(&Command::new("sh").args(["-c", "echo 'no quorum' >&2; exit 2"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`sh -c 'echo '\\''no quorum'\\'' >&2; exit 2'` on sshtest failed with exit status 2 - no quorum"
    );
    let out = host.execute(&Command::new("sh").args(["-c", "echo out; echo err >&2; exit 7"])).unwrap();
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (Some(7), "out\n", "err\n"));
}

#[test]
fn large_stdout_and_stderr_together_do_not_stall() {
    let sshd = server();
    let host = connect(&sshd);
    let script = "head -c 3000000 /dev/zero | tr '\\0' e >&2; head -c 3000000 /dev/zero | tr '\\0' o";
    let out = host.run(&Command::new("sh").args(["-c", script])).unwrap();
    assert_eq!((out.stdout.len(), out.stderr.len()), (3_000_000, 3_000_000));
}

#[test]
fn a_slow_command_times_out() {
    let sshd = server();
    let host = connect(&sshd);
    let err =
        host.run(&Command::new("sleep").arg("30").timeout(std::time::Duration::from_secs(1))).unwrap_err();
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
    target.key = stranger;
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
