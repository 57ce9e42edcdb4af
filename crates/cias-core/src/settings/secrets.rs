//! Passwords, kept apart from the settings in a file of mode 0600 (SPEC section 7: secrets
//! never on a command line, in logs, or in a file others can read).

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// A password. `Debug` and `Display` never show it; [`Secret::expose`] is the only way out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The password itself, for writing to a child's stdin.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// The administrator account the installer creates on the router (Zentyal).
    pub router_admin_password: Secret,
    /// SMTP login password, when the relay needs one.
    #[serde(default)]
    pub smtp_password: Option<Secret>,
}

impl Secrets {
    /// Reads the secrets file, refusing one that group or others can read.
    pub fn load(file: &Path) -> Result<Self, SettingsError> {
        let read_err = |source| SettingsError::Read { file: file.into(), source };
        let mode = std::fs::metadata(file).map_err(read_err)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SettingsError::SecretsExposed { file: file.into(), mode });
        }
        let text = std::fs::read_to_string(file).map_err(read_err)?;
        serde_yaml::from_str(&text).map_err(|e| SettingsError::Syntax {
            file: file.into(),
            line: e.location().map(|l| l.line()),
            // serde's message may quote the offending value: keep only its kind.
            message: "not a valid secrets file (expected router_admin_password and optional smtp_password)"
                .into(),
        })
    }

    /// Writes the secrets file with mode 0600 from the moment it exists (never briefly readable).
    pub fn save(&self, file: &Path) -> Result<(), SettingsError> {
        let write_err = |source| SettingsError::Write { file: file.into(), source };
        let text = serde_yaml::to_string(self).expect("secrets serialise");
        let tmp = file.with_extension("yaml.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_err)?;
        out.write_all(text.as_bytes()).and_then(|_| out.sync_all()).map_err(write_err)?;
        std::fs::rename(&tmp, file).map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Secrets {
        Secrets { router_admin_password: Secret::new("s3cret!"), smtp_password: None }
    }

    #[test]
    fn saved_secrets_are_private_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.yaml");
        sample().save(&file).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Secrets::load(&file).unwrap(), sample());
    }

    #[test]
    fn a_readable_secrets_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.yaml");
        sample().save(&file).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Secrets::load(&file).unwrap_err().to_string();
        assert!(err.contains("readable by group or others (mode 0644)"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        assert!(!format!("{:?}", sample()).contains("s3cret"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.yaml");
        std::fs::write(&file, "router_admin_password: [s3cret]\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = Secrets::load(&file).unwrap_err().to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
