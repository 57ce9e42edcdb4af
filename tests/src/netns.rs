//! Throw-away network namespaces with local-only interfaces: a place where `keepalived
//! --config-test` finds the interfaces a config names, without touching the machine's network.

use anyhow::{Context, Result};

/// A network namespace deleted on drop. It has no route anywhere: only links inside it.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `cias-test-<tag>-<pid>` holding a link per name in `links` (a veth
    /// pair whose other end stays in the namespace: this kernel may lack the dummy driver).
    pub fn with_links(tag: &str, links: &[&str]) -> Result<Self> {
        let name = format!("cias-test-{tag}-{}", std::process::id());
        let _ = duct::cmd!("ip", "netns", "del", &name).stderr_null().unchecked().run();
        duct::cmd!("ip", "netns", "add", &name).run().context("ip netns add (needs root)")?;
        let ns = Self { name };
        for link in links {
            let peer = format!("{link}-p");
            ns.exec_ok(&["ip", "link", "add", link, "type", "veth", "peer", "name", &peer])?;
            ns.exec_ok(&["ip", "link", "set", link, "up"])?;
        }
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `argv` inside the namespace and fails unless it exits 0.
    pub fn exec_ok(&self, argv: &[&str]) -> Result<String> {
        let (code, out) = self.exec(argv)?;
        if code != 0 {
            anyhow::bail!("`{}` in namespace {} exited {code}: {out}", argv.join(" "), self.name);
        }
        Ok(out)
    }

    /// Runs `argv` inside the namespace and returns (exit code, stdout + stderr).
    pub fn exec(&self, argv: &[&str]) -> Result<(i32, String)> {
        let mut args = vec!["netns", "exec", self.name.as_str()];
        args.extend_from_slice(argv);
        let out = duct::cmd("ip", &args).stderr_to_stdout().stdout_capture().unchecked().run()?;
        Ok((out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned()))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = duct::cmd!("ip", "netns", "del", &self.name).stderr_null().unchecked().run();
    }
}
