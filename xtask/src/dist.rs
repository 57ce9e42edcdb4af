//! `cargo xtask dist`: the toolkit's Debian package, `target/dist/dlll-cias_VERSION_ARCH.deb`,
//! built with dpkg-deb alone: the binaries in /usr/sbin, the templates in
//! /usr/share/dlll-cias/templates, the man pages and bash/zsh/fish completions of `dist/`, the
//! example answers and secrets files, and `Depends:` on every package setup's preflight
//! checks. `--check` builds it from a debug build and checks what it holds (CI).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

const PACKAGE: &str = "dlll-cias";

pub fn run(check: bool) -> Result<PathBuf> {
    // Stale man pages or completions would ship help that differs from the binaries.
    crate::docs::run(true)?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = build(&root, !check)?;
    let version = env!("CARGO_PKG_VERSION");
    let arch = duct::cmd!("dpkg", "--print-architecture").read()?.trim().to_string();
    let out_dir = root.join("target/dist");
    let staging = out_dir.join(format!("{PACKAGE}_{version}_{arch}"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    for b in crate::demo::BINARIES {
        install(&bin.join(b), &staging.join("usr/sbin").join(b), 0o755)?;
    }
    copy_tree(&root.join("templates"), &staging.join("usr/share/dlll-cias/templates"))?;
    let dist = crate::docs::dist_dir();
    for page in std::fs::read_dir(dist.join("man"))? {
        let page = page?.path();
        let name = format!("{}.gz", page.file_name().context("a page name")?.to_string_lossy());
        let gz = duct::cmd!("gzip", "-9n", "-c", &page).stdout_capture().run()?.stdout;
        write(&staging.join("usr/share/man/man8").join(name), &gz, 0o644)?;
    }
    for (shell, target) in [
        ("bash", "usr/share/bash-completion/completions"),
        ("zsh", "usr/share/zsh/vendor-completions"),
        ("fish", "usr/share/fish/vendor_completions.d"),
    ] {
        copy_tree(&dist.join("completions").join(shell), &staging.join(target))?;
    }
    let doc = staging.join("usr/share/doc").join(PACKAGE);
    copy_tree(&dist.join("examples"), &doc.join("examples"))?;
    let copyright = format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: {PACKAGE}\n\nFiles: *\nLicense: {}\n On Debian systems the full text is in\n \
         /usr/share/common-licenses/GPL-3.\n",
        env!("CARGO_PKG_LICENSE")
    );
    write(&doc.join("copyright"), copyright.as_bytes(), 0o644)?;
    let size_kib =
        duct::cmd!("du", "-sk", &staging).read()?.split_whitespace().next().unwrap_or("0").to_string();
    let control = format!(
        "Package: {PACKAGE}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: DLLL-CIAS developers <dlll-cias@localhost>\n\
         Installed-Size: {size_kib}\nDepends: {}\nSection: admin\nPriority: optional\n\
         Description: self-healing Proxmox VE cluster toolkit\n \
         Installs and runs a Proxmox VE cluster with a keepalived-elected master, MooseFS shared\n \
         storage, a Zentyal router VM and automatic recovery of VMs when a node dies.\n \
         Run dlll_cias-setup on each node.\n",
        cias_core::installed::PACKAGES.join(", ")
    );
    write(&staging.join("DEBIAN/control"), control.as_bytes(), 0o644)?;
    let deb = out_dir.join(format!("{PACKAGE}_{version}_{arch}.deb"));
    // A check's debug binaries are large, and the package is only read back: not compressed.
    let compression = if check { "-Znone" } else { "-Zxz" };
    duct::cmd!("dpkg-deb", "--root-owner-group", compression, "--build", &staging, &deb)
        .stdout_null()
        .run()
        .context("dpkg-deb cannot build the package")?;
    verify(&deb)?;
    println!("{}", deb.display());
    Ok(deb)
}

/// Builds the binaries: release for a package, debug for `--check`.
fn build(root: &Path, release: bool) -> Result<PathBuf> {
    if !release {
        return crate::demo::build();
    }
    let mut args = vec!["build", "--release", "--quiet", "--locked"];
    for b in crate::demo::BINARIES {
        args.extend(["-p", b]);
    }
    duct::cmd("cargo", &args).dir(root).run().context("cannot build the release binaries")?;
    Ok(root.join("target/release"))
}

/// What an administrator relies on: every binary, its man page, the examples, the depends.
fn verify(deb: &Path) -> Result<()> {
    let contents = duct::cmd!("dpkg-deb", "--contents", deb).read()?;
    let mut expected: Vec<String> = crate::demo::BINARIES
        .iter()
        .flat_map(|b| [format!("./usr/sbin/{b}"), format!("./usr/share/man/man8/{b}.8.gz")])
        .collect();
    expected.push(format!("./usr/share/doc/{PACKAGE}/examples/answers-first-node.yaml"));
    expected.push("./usr/share/dlll-cias/templates/keepalived/keepalived.conf.j2".into());
    let missing: Vec<&String> = expected.iter().filter(|e| !contents.contains(e.as_str())).collect();
    if !missing.is_empty() {
        bail!("{} lacks {missing:?}", deb.display());
    }
    let depends = duct::cmd!("dpkg-deb", "--field", deb, "Depends").read()?;
    if depends.trim() != cias_core::installed::PACKAGES.join(", ") {
        bail!("{} depends on '{}'", deb.display(), depends.trim());
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().context("a parent directory")?)?;
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn install(from: &Path, to: &Path, mode: u32) -> Result<()> {
    write(to, &std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?, mode)
}

/// Copies a tree of plain files (mode 0644).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let path = entry?.path();
        let target = to.join(path.file_name().context("a file name")?);
        if path.is_dir() {
            copy_tree(&path, &target)?;
        } else {
            install(&path, &target, 0o644)?;
        }
    }
    Ok(())
}
