//! The exit statuses the scenario commands share: 0 done, 1 a step failed (a re-run
//! continues), 2 bad input or not installed, 3 refused (nothing was changed, and why).

use crate::installed::InstalledError;
use crate::settings::SettingsError;

/// The exit-status table every command's `--help` ends with (`concat!` takes it): one table
/// for every binary but `dlll_cias-status`, whose status is the cluster's health.
#[macro_export]
macro_rules! exit_status_help {
    () => {
        "Exit status: 0 done (or nothing to do); 1 a step failed (running the same command again \
         continues); 2 bad input, bad settings or not installed; 3 refused (nothing was changed; the \
         message says why)."
    };
}

/// A refusal: the command changed nothing, and says why (exit 3).
#[derive(Debug, thiserror::Error)]
#[error("refused: {0}")]
pub struct Refused(pub String);

/// Input the command cannot work with (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Refuses to go on unless the process runs as root: checked first, before any lock or file
/// of root's is touched, so the message says what is wrong.
pub fn require_root(command: &str) -> Result<(), BadInput> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(BadInput(format!("{command} must run as root (it changes this node's system configuration)")))
    }
}

/// The exit status for `error` or anything in its chain of causes.
pub fn code(error: &(dyn std::error::Error + 'static)) -> u8 {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<Refused>() {
            return 3;
        }
        if e.is::<BadInput>() || e.is::<SettingsError>() || e.is::<InstalledError>() {
            return 2;
        }
        cause = e.source();
    }
    1
}

/// Ends a command: a failure is printed once, with its causes (`{:#}`), recorded in the
/// journal and the command's log (not printed twice at a terminal), and turned into its exit
/// status.
#[allow(clippy::print_stderr)]
pub fn finish<E>(command: &str, result: Result<std::process::ExitCode, E>) -> std::process::ExitCode
where
    E: std::ops::Deref<Target = dyn std::error::Error + Send + Sync + 'static> + std::fmt::Display,
{
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{command}: {e:#}");
            let status = code(&*e);
            match status {
                1 => tracing::error!(target: crate::logging::RECORD_ONLY, "failed: {e:#}"),
                _ => tracing::warn!(target: crate::logging::RECORD_ONLY, "exit {status}: {e:#}"),
            }
            std::process::ExitCode::from(status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("while removing: {0}")]
    struct Wrapper(#[source] Refused);

    #[test]
    fn codes_follow_the_cause_chain() {
        assert_eq!(code(&Refused("no quorum".into())), 3);
        assert_eq!(code(&Wrapper(Refused("no quorum".into()))), 3);
        assert_eq!(code(&BadInput("no such node".into())), 2);
        assert_eq!(code(&std::io::Error::other("disk full")), 1);
    }
}
