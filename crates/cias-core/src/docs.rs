//! Man pages and shell completions, generated from each binary's clap definition so they never
//! drift from `--help`: a binary started with `DLLL_CIAS_DOCS=DIR` writes
//! `DIR/man/NAME.8` and `DIR/completions/{bash/NAME, zsh/_NAME, fish/NAME.fish}` and exits.
//! `cargo xtask docs` runs every binary so into `dist/`; CI checks that `dist/` is current.

use std::path::Path;

/// The environment variable that asks a binary for its docs.
pub const ENV: &str = "DLLL_CIAS_DOCS";

/// Call first in `main`: when [`ENV`] is set, writes the docs of `C` there and exits.
pub fn write_if_asked<C: clap::CommandFactory>() {
    let Some(dir) = std::env::var_os(ENV) else { return };
    // The package version only: the commit would make every commit change the pages.
    let command = C::command().version(env!("CARGO_PKG_VERSION"));
    let code = match write(command, Path::new(&dir)) {
        Ok(()) => 0,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("cannot write the docs into {}: {e}", Path::new(&dir).display());
            }
            1
        }
    };
    std::process::exit(code);
}

fn write(mut command: clap::Command, dir: &Path) -> std::io::Result<()> {
    let name = command.get_name().to_string();
    command.build();
    man_pages(&command, &name, &dir.join("man"))?;
    use clap_complete::Shell;
    for (shell, file) in [
        (Shell::Bash, format!("bash/{name}")),
        (Shell::Zsh, format!("zsh/_{name}")),
        (Shell::Fish, format!("fish/{name}.fish")),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, &name, &mut script);
        save(&dir.join("completions").join(file), &script)?;
    }
    Ok(())
}

/// `NAME.8`, and `NAME-SUB.8` for each subcommand (`man dlll_cias-watch-uplink`).
fn man_pages(command: &clap::Command, name: &str, dir: &Path) -> std::io::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone().name(name.to_string())).section("8").render(&mut page)?;
    save(&dir.join(format!("{name}.8")), &page)?;
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        man_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}

fn save(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}
