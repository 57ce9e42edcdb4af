//! Another member of this Proxmox cluster, reached the way Proxmox itself reaches it
//! (pve-manager's pvesh proxy, PVE/SSHInfo.pm): this machine's OpenSSH client as root, in
//! batch mode, with the root keys the cluster shares and the host key checked under the node's
//! name (`HostKeyAlias`). No password and no prompt: keepalived and cron run these commands.

use std::sync::Arc;
use std::time::Duration;

use super::{remote_line, Command, Host, HostError, Output};

/// How long ssh may take to connect before the command counts as failed.
const CONNECT_TIMEOUT_SECS: u32 = 10;

/// A cluster member, by name and cluster address, whose commands `local` carries over SSH.
#[derive(Debug, Clone)]
pub struct PeerHost {
    name: String,
    address: String,
    local: Arc<dyn Host>,
}

impl PeerHost {
    pub fn new(name: impl Into<String>, address: impl Into<String>, local: Arc<dyn Host>) -> Self {
        Self { name: name.into(), address: address.into(), local }
    }

    fn options(&self) -> Vec<String> {
        [
            "BatchMode=yes",
            &format!("HostKeyAlias={}", self.name),
            &format!("ConnectTimeout={CONNECT_TIMEOUT_SECS}"),
        ]
        .iter()
        .flat_map(|o| ["-o".to_string(), o.to_string()])
        .collect()
    }

    /// The command, run on this machine, that copies the peer's file `remote` to `local_path`
    /// here (scp streams it: MooseFS metadata can be large, and is binary).
    pub fn copy_from(&self, remote: &str, local_path: &str) -> Command {
        let mut argv = vec!["scp".to_string(), "-p".to_string()];
        argv.extend(self.options());
        argv.push(format!("root@{}:{remote}", self.address));
        argv.push(local_path.to_string());
        Command::from_argv(&argv.iter().map(String::as_str).collect::<Vec<_>>())
            .timeout(super::DEFAULT_TIMEOUT)
    }

    fn ssh_argv(&self, cmd: &Command) -> Vec<String> {
        let mut argv = vec!["ssh".to_string(), "-e".to_string(), "none".to_string()];
        argv.extend(self.options());
        argv.push(format!("root@{}", self.address));
        argv.push("--".to_string());
        argv.push(remote_line(cmd));
        argv
    }
}

impl Host for PeerHost {
    fn name(&self) -> &str {
        &self.name
    }

    /// ssh exits with the remote command's status, or 255 when it cannot connect (its
    /// message is then on stderr).
    fn execute(&self, cmd: &Command) -> Result<Output, HostError> {
        let carried = cmd.carried_by(self.ssh_argv(cmd), Duration::from_secs(CONNECT_TIMEOUT_SECS.into()));
        self.local.execute(&carried)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::DryRunHost;

    #[test]
    fn commands_travel_as_one_quoted_line_with_the_clusters_ssh_options() {
        let local = Arc::new(DryRunHost::new("node3"));
        let peer = PeerHost::new("node1", "10.254.1.1", local.clone());
        peer.run(&Command::new("qm").args(["migrate", "100", "node3", "--online"])).unwrap();
        let sent = local.recorded()[0].argv().to_vec();
        assert_eq!(
            sent[..10],
            [
                "ssh",
                "-e",
                "none",
                "-o",
                "BatchMode=yes",
                "-o",
                "HostKeyAlias=node1",
                "-o",
                "ConnectTimeout=10",
                "root@10.254.1.1"
            ]
        );
        assert_eq!(sent[10], "--");
        assert!(sent[11].ends_with(" qm migrate 100 node3 --online"), "{}", sent[11]);
        assert!(sent[11].contains("timeout --kill-after=5 600.000s"), "{}", sent[11]);
    }

    #[test]
    fn queries_stay_queries_so_a_dry_run_can_still_read_the_peer() {
        let local = Arc::new(DryRunHost::new("node3"));
        let peer = PeerHost::new("node1", "10.254.1.1", local.clone());
        peer.run(&Command::query("ip").args(["-o", "addr"])).unwrap();
        peer.run(&Command::new("systemctl").args(["stop", "moosefs-master"])).unwrap();
        let kinds: Vec<bool> = local.recorded().iter().map(Command::changes_state).collect();
        assert_eq!(kinds, [false, true]);
    }

    #[test]
    fn copies_use_scp_with_the_same_options() {
        let peer = PeerHost::new("node1", "10.254.1.1", Arc::new(DryRunHost::new("node3")));
        let copy = peer.copy_from("/var/lib/mfs/metadata.mfs", "/var/lib/mfs/metadata.mfs");
        assert_eq!(
            copy.to_string(),
            "scp -p -o BatchMode=yes -o HostKeyAlias=node1 -o ConnectTimeout=10 \
             root@10.254.1.1:/var/lib/mfs/metadata.mfs /var/lib/mfs/metadata.mfs"
        );
    }
}
