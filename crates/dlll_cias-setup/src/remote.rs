//! SSH sessions the installer opens itself: the master (first contact checked against the
//! fingerprint the administrator confirmed, then key login against the pinned key) and the
//! router VM (password login; its key pinned on first contact).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use cias_core::host::{
    scan_host_key, Host, HostError, HostKeyPolicy, ScannedKey, SshAuth, SshHost, SshTarget,
};
use cias_core::settings::Secret;

use crate::steps::master_access::KEY;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The host key `address` shows, read before logging in.
pub fn scan(address: &str) -> Result<ScannedKey> {
    Ok(scan_host_key(address, 22, TIMEOUT)?)
}

fn target(address: &str, user: &str, pinned: &str) -> SshTarget {
    let mut t = SshTarget::root(address, address, PathBuf::from(KEY), PathBuf::from(pinned));
    t.user = user.to_string();
    t
}

/// A password session; `None` when the password is refused (any other failure is an error).
fn password_session(mut target: SshTarget, password: &Secret) -> Result<Option<Arc<dyn Host>>> {
    target.auth = SshAuth::Password(password.clone());
    match SshHost::connect(target) {
        Ok(s) => Ok(Some(Arc::new(s))),
        Err(HostError::Auth { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Logs in with a password to the host whose key was just scanned (and confirmed).
pub fn password_login_expecting(
    address: &str,
    user: &str,
    password: &Secret,
    key: &ScannedKey,
) -> Result<Option<Arc<dyn Host>>> {
    let mut t = target(address, user, "");
    t.host_key = HostKeyPolicy::ExpectFingerprint(key.fingerprint());
    password_session(t, password)
}

/// Logs in with a password to a host pinned in `pinned`.
pub fn password_login(
    address: &str,
    user: &str,
    password: &Secret,
    pinned: &str,
) -> Result<Option<Arc<dyn Host>>> {
    password_session(target(address, user, pinned), password)
}

/// Root with this node's key, against the pinned host key.
pub fn key_login(address: &str, pinned: &str) -> Result<Arc<dyn Host>> {
    Ok(Arc::new(SshHost::connect(target(address, "root", pinned))?))
}
