//! The node watch's liveness sweep, for `cargo xtask bench sweep`: probes `--count` distinct
//! loopback addresses 127.0.x.y exactly as `dlll_cias-watch nodes` probes the cluster's members
//! (`cias_core::node_watch::probe_all`: TCP connect to port 22, `PROBE_TIMEOUT`,
//! `PROBE_WORKERS` threads). The bench runs it inside a throw-away network namespace whose
//! loopback answers for every 127.x address and where one sshd listens on port 22.
//!
//! `--banner` measures the floor of a real SSH check instead: connect and read sshd's banner
//! line, by as many threads.
//!
//! Prints one line `answered=N targets=N seconds=S workers=N timeout_ms=N` on stdout.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cias_core::node_watch::{answering, probe_all, PROBE_PORT, PROBE_TIMEOUT, PROBE_WORKERS};

/// Target `i` (0-based): 127.0.x.y with y in 1..=254, so 1,270 targets are 127.0.0.1 ..
/// 127.0.4.254.
fn target(i: usize) -> IpAddr {
    let x = u8::try_from(i / 254).expect("at most 65,024 targets");
    let y = u8::try_from(i % 254 + 1).expect("1..=254");
    IpAddr::V4(Ipv4Addr::new(127, 0, x, y))
}

/// Connect and read the server's first line (`SSH-2.0-...`), `parallel` at a time.
fn banners(addresses: &[(String, IpAddr)], parallel: usize) -> BTreeSet<String> {
    answering(addresses, parallel, |ip| {
        let Ok(stream) = TcpStream::connect_timeout(&SocketAddr::new(ip, PROBE_PORT), PROBE_TIMEOUT) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("SSH-")
    })
}

fn main() -> ExitCode {
    let mut count = 1_270;
    let mut banner = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--count" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if (1..=65_024).contains(&n) => count = n,
                _ => {
                    eprintln!("sweep_probe: --count takes a number of targets, 1..65024");
                    return ExitCode::from(2);
                }
            },
            "--banner" => banner = true,
            other => {
                eprintln!("sweep_probe: unknown argument {other:?} (use --count N, --banner)");
                return ExitCode::from(2);
            }
        }
    }
    let targets: Vec<(String, IpAddr)> = (0..count).map(|i| (target(i).to_string(), target(i))).collect();
    let start = Instant::now();
    let answered = if banner {
        banners(&targets, PROBE_WORKERS)
    } else {
        probe_all(&targets, PROBE_PORT, PROBE_TIMEOUT, PROBE_WORKERS)
    };
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "answered={} targets={count} seconds={seconds:.3} workers={PROBE_WORKERS} timeout_ms={}",
        answered.len(),
        PROBE_TIMEOUT.as_millis()
    );
    ExitCode::SUCCESS
}
