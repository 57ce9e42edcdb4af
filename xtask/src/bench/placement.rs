//! `bench placement`: runs `crates/cias-core/examples/placement_bench.rs` optimized (xtask
//! itself is a debug build), which prints its table and exits 1 when the median misses 50 ms.

use anyhow::{bail, Result};

use super::{Mode, Report};

pub fn run(mode: Mode) -> Result<Report> {
    let (profile, _) = mode.profile();
    let mut args = vec!["run", "--quiet", "--locked", "-p", "cias-core", "--example", "placement_bench"];
    args.extend(profile);
    if mode == Mode::Check {
        args.extend(["--", "--check"]);
    }
    let out = duct::cmd("cargo", &args).dir(super::workspace()).stdout_capture().unchecked().run()?;
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let missed = match out.status.code() {
        Some(0) => None,
        Some(1) if table.contains("| --- |") => Some("the median placement time is over 50 ms".to_string()),
        _ => bail!("cargo {} failed ({}): {table}", args.join(" "), out.status),
    };
    let body = format!(
        "`cias_core::placement::place` (the rule of takeover, removal and escape), run by\n\
         `cargo run --release --locked -p cias-core --example placement_bench`\n\
         (`crates/cias-core/examples/placement_bench.rs`: a fixed pseudo-random fleet).\n\n\
         {table}\n\
         The bound: any placement of the same VMs adds the same memory, so if every node stayed\n\
         below level L it would have to fit under L; the water-filling level (fill every node\n\
         below L up to L until the VMs' memory is used up) is therefore the lowest highest use any\n\
         placement can reach, even one that could split a VM. The fleet-wide average is a weaker\n\
         bound of the same kind (reached only if no node started above it).\n"
    );
    Ok(Report { title: "Placement plan: 1,270 nodes x 124,245 VMs", body, missed })
}
