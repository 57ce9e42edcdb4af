//! A dry run: records (and reports) every state-changing command instead of running it.

use std::sync::{Arc, Mutex};

use super::{Command, Host, HostError, Output};

type Sink = Box<dyn Fn(&str, &Command) + Send + Sync>;

/// Records commands instead of running them. Read-only queries ([`Command::query_argv`]) go to
/// `inner` when there is one, so a plan can be computed from the node's real state.
pub struct DryRunHost {
    name: String,
    inner: Option<Arc<dyn Host>>,
    recorded: Mutex<Vec<Command>>,
    sink: Option<Sink>,
}

impl std::fmt::Debug for DryRunHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DryRunHost({})", self.name)
    }
}

impl DryRunHost {
    /// A dry run of node `name`; queries fail unless [`DryRunHost::reading_from`] is used.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), inner: None, recorded: Mutex::new(Vec::new()), sink: None }
    }

    /// A dry run that still runs read-only queries on `inner`.
    pub fn reading_from(inner: Arc<dyn Host>) -> Self {
        Self { inner: Some(inner.clone()), ..Self::new(inner.name()) }
    }

    /// Calls `sink(host, command)` for each recorded command, as it is recorded (the binary
    /// prints it; this library never prints).
    /// `host` itself, or in a dry run a recorder in front of it that reads through it and
    /// prints each change as `[node] $ command`.
    #[allow(clippy::print_stdout)]
    pub fn printing_if(dry_run: bool, host: Arc<dyn Host>) -> Arc<dyn Host> {
        if dry_run {
            Arc::new(Self::reading_from(host).with_sink(|h, c| println!("[{h}] $ {c}")))
        } else {
            host
        }
    }

    pub fn with_sink(mut self, sink: impl Fn(&str, &Command) + Send + Sync + 'static) -> Self {
        self.sink = Some(Box::new(sink));
        self
    }

    /// Every state-changing command, in order.
    pub fn recorded(&self) -> Vec<Command> {
        self.recorded.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Host for DryRunHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn execute(&self, cmd: &Command) -> Result<Output, HostError> {
        if !cmd.changes_state() {
            if let Some(inner) = &self.inner {
                return inner.execute(cmd);
            }
        }
        if let Some(sink) = &self.sink {
            sink(&self.name, cmd);
        }
        self.recorded.lock().unwrap_or_else(|p| p.into_inner()).push(cmd.clone());
        Ok(Output { code: Some(0), ..Output::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::LocalHost;
    use crate::settings::Secret;

    #[test]
    fn records_the_exact_argv_and_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("created");
        let host = DryRunHost::new("node1");
        let create = Command::new("touch").arg(marker.to_str().unwrap());
        let backup = Command::new("pvesh").args(["create", "/cluster/backup", "--schedule", "mon 02:00"]);
        host.run(&create).unwrap();
        host.run(&backup).unwrap();
        assert!(!marker.exists(), "a dry run must not run anything");
        let argvs: Vec<Vec<String>> = host.recorded().iter().map(|c| c.argv().to_vec()).collect();
        assert_eq!(argvs[1], ["pvesh", "create", "/cluster/backup", "--schedule", "mon 02:00"]);
        assert_eq!(host.recorded()[1].to_string(), "pvesh create /cluster/backup --schedule 'mon 02:00'");
    }

    #[test]
    fn reports_each_command_to_the_sink_without_secrets() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        let host =
            DryRunHost::new("node2").with_sink(move |h, c| seen.lock().unwrap().push(format!("{h}: {c}")));
        let join = Command::new("pvecm").args(["add", "10.254.0.1"]).stdin_secret(&Secret::new("rootpw"));
        host.run(&join).unwrap();
        assert_eq!(*lines.lock().unwrap(), ["node2: pvecm add 10.254.0.1 <<< (secret on stdin)"]);
    }

    #[test]
    fn a_written_file_shows_its_content_but_a_secret_file_does_not() {
        let config = Command::write_file("/etc/keepalived/keepalived.conf", "vrrp_instance\n", "0644");
        assert_eq!(config.data(), Some("vrrp_instance\n"));
        let secrets =
            Command::write_secret_file("/data/cias/secrets.yaml", &Secret::new("pw: rootpw"), "0600");
        assert_eq!(secrets.data(), None);
        assert_eq!(secrets.to_string(), "write /data/cias/secrets.yaml (mode 0600) <<< (secret on stdin)");
        assert_eq!(Command::query_argv(&["pvecm", "status"]).argv(), ["pvecm", "status"]);
        assert!(!Command::query_argv(&["pvecm", "status"]).changes_state());
    }

    #[test]
    fn queries_run_for_real_when_a_real_host_is_given() {
        let host = DryRunHost::reading_from(Arc::new(LocalHost::new("local")));
        let out = host.run(&Command::query("echo").arg("state")).unwrap();
        assert_eq!(out.stdout, "state\n");
        assert!(host.recorded().is_empty());
    }
}
