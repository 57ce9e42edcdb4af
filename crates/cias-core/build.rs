//! Records the git commit the toolkit is built from, for every binary's `--version`
//! ("unknown" when built outside a git checkout, e.g. from a source tarball). It reads the
//! repository's files (`HEAD`, then the branch's ref, loose or packed) rather than starting
//! `git`: processes start only through `cias_core::host`, which this script builds.

use std::path::Path;

fn main() {
    let git = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.git");
    let commit = head_commit(&git).map(|c| c[..12].to_string()).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CIAS_COMMIT={commit}");
    // A new commit moves the branch's ref (or HEAD itself when detached).
    for watched in ["HEAD", "refs/heads", "packed-refs"] {
        println!("cargo:rerun-if-changed={}", git.join(watched).display());
    }
}

/// The commit `HEAD` names: itself when detached, else its branch's ref.
fn head_commit(git: &Path) -> Option<String> {
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(branch) = head.strip_prefix("ref: ") else { return hash(head) };
    if let Ok(loose) = std::fs::read_to_string(git.join(branch)) {
        return hash(loose.trim());
    }
    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
    packed.lines().find_map(|line| match line.split_once(' ') {
        Some((commit, name)) if name == branch => hash(commit),
        _ => None,
    })
}

fn hash(text: &str) -> Option<String> {
    (text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())).then(|| text.to_string())
}
