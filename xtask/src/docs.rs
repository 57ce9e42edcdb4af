//! `cargo xtask docs`: every binary's man page and bash/zsh/fish completions, generated from its
//! clap definition (`cias_core::docs`) into `dist/`; `--check` fails when `dist/` is not what
//! the code generates now (CI runs it).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Where the generated pages and completions are kept (and packaged from).
pub fn dist_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist")
}

pub fn run(check: bool) -> Result<()> {
    let bin = crate::demo::build()?;
    let fresh = tempfile::tempdir()?;
    for b in crate::demo::BINARIES {
        duct::cmd(bin.join(b), Vec::<String>::new())
            .env(cias_core::docs::ENV, fresh.path())
            .stdout_null()
            .run()
            .with_context(|| format!("{b} cannot write its docs"))?;
    }
    let dist = dist_dir();
    let stale = differences(fresh.path(), &dist)?;
    if check {
        if !stale.is_empty() {
            bail!("dist/ is not current ({}): run `cargo xtask docs` and commit it", stale.join(", "));
        }
        println!("dist/: man pages and completions are current");
        return Ok(());
    }
    for sub in ["man", "completions"] {
        let target = dist.join(sub);
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        crate::dist::copy_tree(&fresh.path().join(sub), &target)?;
    }
    println!("dist/: {} file(s) rewritten", stale.len());
    Ok(())
}

/// Relative paths that differ between the two trees (either side).
fn differences(a: &Path, b: &Path) -> Result<Vec<String>> {
    let (left, right) = (files(a)?, files(b)?);
    let names: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    Ok(names.into_iter().filter(|n| left.get(*n) != right.get(*n)).cloned().collect())
}

/// (path relative to `root`, content) of every file under `root`'s man/ and completions/.
fn files(root: &Path) -> Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    let mut dirs: Vec<PathBuf> =
        ["man", "completions"].iter().map(|s| root.join(s)).filter(|d| d.exists()).collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let name = path.strip_prefix(root)?.display().to_string();
                out.insert(name, std::fs::read(&path)?);
            }
        }
    }
    Ok(out)
}
