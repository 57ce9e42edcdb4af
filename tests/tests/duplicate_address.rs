//! The duplicate-address probe (`cias_core::host::address_owner`, real `arping -D`) in a
//! throw-away network namespace: a veth pair whose one end holds the address the other probes.

use cias_core::host::{address_owner, Command, Host, HostError, LocalHost, Output};
use cias_tests::netns::Netns;

/// Runs every command inside the namespace (as a node would run it in its own).
#[derive(Debug)]
struct InNamespace(String);

impl Host for InNamespace {
    fn name(&self) -> &str {
        &self.0
    }

    fn execute(&self, cmd: &Command) -> Result<Output, HostError> {
        let mut argv = vec!["ip", "netns", "exec", self.0.as_str()];
        argv.extend(cmd.argv().iter().map(String::as_str));
        LocalHost::new(self.0.clone()).execute(&Command::query_argv(&argv))
    }
}

#[test]
fn an_address_in_use_names_the_device_and_a_free_one_passes() {
    let ns = Netns::with_links("dad", &["lan"]).unwrap();
    ns.exec_ok(&["ip", "link", "set", "lan-p", "up"]).unwrap();
    ns.exec_ok(&["ip", "addr", "add", "10.254.1.2/8", "dev", "lan-p"]).unwrap();
    let mac = ns.exec_ok(&["cat", "/sys/class/net/lan-p/address"]).unwrap().trim().to_uppercase();
    let node = InNamespace(ns.name().to_string());
    assert_eq!(address_owner(&node, "lan", "10.254.1.2").unwrap(), Some(mac));
    assert_eq!(address_owner(&node, "lan", "10.254.1.3").unwrap(), None);
    let err = address_owner(&node, "nosuch", "10.254.1.3").unwrap_err().to_string();
    assert!(err.contains("arping -D") && err.contains("nosuch"), "{err}");
}
