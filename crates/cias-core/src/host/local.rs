//! Commands on this machine, through duct.

use super::{Command, Host, HostError, Output, SAFE_PATH};

/// This machine. Commands run with a pinned PATH, `LC_ALL=C` (parseable output) and without
/// the variables a shell would obey behind our back (IFS, ENV, BASH_ENV, CDPATH).
#[derive(Debug, Clone)]
pub struct LocalHost {
    name: String,
}

impl LocalHost {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

impl Host for LocalHost {
    fn name(&self) -> &str {
        &self.name
    }

    #[allow(clippy::disallowed_methods)] // the one place that starts local processes
    fn execute(&self, cmd: &Command) -> Result<Output, HostError> {
        let argv = cmd.argv();
        let mut expr = duct::cmd(&argv[0], &argv[1..])
            .env("PATH", SAFE_PATH)
            .env("LC_ALL", "C")
            .env_remove("IFS")
            .env_remove("ENV")
            .env_remove("BASH_ENV")
            .env_remove("CDPATH")
            .stdout_capture()
            .stderr_capture()
            .unchecked();
        expr = match cmd.stdin_bytes() {
            Some(bytes) => expr.stdin_bytes(bytes),
            None => expr.stdin_null(),
        };
        let spawn_err =
            |source| HostError::Spawn { host: self.name.clone(), command: cmd.to_string(), reason: source };
        let handle = expr.start().map_err(spawn_err)?;
        let finished = handle.wait_timeout(cmd.timeout_value()).map_err(spawn_err)?;
        let Some(output) = finished else {
            let _ = handle.kill();
            return Err(HostError::Timeout {
                host: self.name.clone(),
                command: cmd.to_string(),
                after: cmd.timeout_value(),
            });
        };
        Ok(Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::host::quote;
    use crate::settings::Secret;

    fn host() -> LocalHost {
        LocalHost::new("testnode")
    }

    #[test]
    fn runs_argv_without_a_shell() {
        let out = host().run(&Command::new("printf").args(["%s|", "a b", "$(id)", "*"])).unwrap();
        assert_eq!(out.stdout, "a b|$(id)|*|");
    }

    #[test]
    fn quoting_round_trips_through_a_real_shell() {
        let args: Vec<String> = ["plain", "two words", "it's", "$HOME", "`x`", "a\"b", "", "new\nline", "\\"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let script = format!("printf '%s\\0' {}", quote::join(&args));
        let out = host().run(&Command::new("sh").args(["-c", &script])).unwrap();
        let back: Vec<&str> = out.stdout.split_terminator('\0').collect();
        assert_eq!(back, args);
    }

    #[test]
    fn secrets_go_over_stdin() {
        let secret = Secret::new("pa ss'word");
        let cmd = Command::new("cat").stdin_secret(&secret);
        assert_eq!(host().run(&cmd).unwrap().stdout, "pa ss'word\n");
        assert!(!cmd.to_string().contains("pa ss"), "{cmd}");
        assert!(!format!("{cmd:?}").contains("pa ss"));
    }

    #[test]
    fn a_failure_names_host_command_status_and_stderr() {
        let err = host().run(&Command::new("sh").args(["-c", "echo broken >&2; exit 3"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sh -c 'echo broken >&2; exit 3'` on testnode failed with exit status 3 - broken"
        );
        let out = host().execute(&Command::new("sh").args(["-c", "exit 2"])).unwrap();
        assert_eq!(out.code, Some(2));
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = host().run(&Command::new("/nonexistent/pvecm")).unwrap_err().to_string();
        assert!(err.starts_with("cannot start `/nonexistent/pvecm` on testnode - "), "{err}");
    }

    #[test]
    fn a_slow_command_times_out_and_is_killed() {
        let start = Instant::now();
        let err =
            host().run(&Command::new("sleep").arg("30").timeout(Duration::from_millis(300))).unwrap_err();
        assert!(matches!(err, HostError::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_environment_is_pinned() {
        // Nothing else in this test binary reads BASH_ENV.
        std::env::set_var("BASH_ENV", "/tmp/evil");
        let out = host().run(&Command::new("env")).unwrap();
        assert!(out.stdout.lines().any(|l| l == format!("PATH={SAFE_PATH}")), "{}", out.stdout);
        assert!(out.stdout.lines().any(|l| l == "LC_ALL=C"));
        assert!(!out.stdout.contains("BASH_ENV"), "{}", out.stdout);
    }
}
