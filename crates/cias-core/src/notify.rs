//! Mail to the administrator (install reports, takeover timelines) through the SMTP server of
//! the cluster settings, often a local relay on port 25.
//!
//! Encryption follows what the server can do and what is at stake:
//! - port 465: TLS from the first byte (SMTPS), certificate verified;
//! - with a login: STARTTLS required and the certificate verified, so the password never
//!   travels in clear or to a server that is not the one named;
//! - without a login: STARTTLS when the server offers it, plain otherwise. The certificate is
//!   not verified here: local relays commonly present a self-signed one (Debian's Postfix
//!   offers STARTTLS with its snakeoil certificate), the report holds no secret, and an
//!   attacker on the path could strip STARTTLS anyway.

use std::fmt;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use thiserror::Error;

use crate::host::Host;
use crate::majority::Takeover;
use crate::settings::{ClusterSettings, Secret, Smtp};

/// Limit for connecting and for each SMTP command: a report must never hang a scenario.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a mail was not sent. Every variant says which setting or server to look at.
#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("{field}: '{address}' is not a valid mail address - {reason}")]
    Address { field: &'static str, address: String, reason: String },
    #[error(
        "smtp.username is '{user}' but the secrets file has no smtp_password; add it or remove the username"
    )]
    NoPassword { user: String },
    #[error("cannot send mail to {to} through {server} - {reason}")]
    Send { server: String, to: String, reason: String },
}

/// Mails the administrator from a job nobody watches (keepalived's hook, a service, cron),
/// with the SMTP password of the installed secrets file, and logs whether it went out: such a
/// job must go on when mail fails.
pub fn tell_admin(settings: &ClusterSettings, subject: &str, body: &str) {
    tell(settings, &settings.admin_email, subject, body);
}

/// [`tell_admin`], to the administrator and to `also` (an address given for one report).
pub fn tell_admin_and(settings: &ClusterSettings, also: Option<&str>, subject: &str, body: &str) {
    tell_admin(settings, subject, body);
    if let Some(to) = also.filter(|to| *to != settings.admin_email) {
        tell(settings, to, subject, body);
    }
}

/// `body`, ending with what the administrator must know when the cluster of `host` has no
/// automatic takeover ([`crate::majority`]): every mail says so.
pub fn with_takeover_note(host: &dyn Host, body: &str) -> String {
    match Takeover::read(host).and_then(Takeover::advice) {
        Some(advice) => format!("{}\n\n{advice}\n", body.trim_end()),
        None => body.to_string(),
    }
}

fn tell(settings: &ClusterSettings, to: &str, subject: &str, body: &str) {
    let body = &with_takeover_note(&crate::host::LocalHost::new("localhost"), body);
    let secrets = crate::settings::Secrets::load(
        &std::path::Path::new(crate::paths::MANAGEMENT_DIR).join(crate::paths::SECRETS_FILE),
    )
    .ok();
    let sent = Mailer::new(&settings.smtp, secrets.as_ref().and_then(|s| s.smtp_password.as_ref()), to)
        .and_then(|m| m.send(subject, body));
    match sent {
        Ok(()) => tracing::info!("mail sent to {to}: {subject}"),
        Err(e) => tracing::error!("cannot mail {to}: {e}"),
    }
}

/// When each lasting condition was last mailed (kept across reboots, so a node that restarts
/// does not repeat itself).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Alerts {
    told: std::collections::BTreeMap<String, u64>,
}

impl crate::state_file::StateFile for Alerts {
    const NAME: &'static str = "alerts.json";

    fn file() -> std::path::PathBuf {
        std::path::Path::new(crate::paths::LASTING_STATE_DIR).join(Self::NAME)
    }
}

impl Alerts {
    /// Whether `condition` is to be mailed at `now` (unix seconds): never told, or told
    /// `repeat` ago or longer. Records it when it is.
    pub fn due(&mut self, condition: &str, now: u64, repeat: Duration) -> bool {
        let due = self.told.get(condition).is_none_or(|&at| now.saturating_sub(at) >= repeat.as_secs());
        if due {
            self.told.insert(condition.to_string(), now);
        }
        due
    }

    /// `condition` is over: when it comes back, it is mailed at once. Whether it was on record.
    pub fn clear(&mut self, condition: &str) -> bool {
        self.told.remove(condition).is_some()
    }
}

/// Mails the administrator about a lasting `condition` (a short key: "router-copy-old"), at
/// most once per `alerts.repeat_after_mins`; always logged. Two jobs at the same moment may
/// both mail: the record is a plain file, and one mail too many is the lesser harm.
pub fn alert(settings: &ClusterSettings, condition: &str, subject: &str, body: &str) {
    use crate::state_file::StateFile;
    let file = Alerts::file();
    let mut alerts = Alerts::load(&file);
    let repeat = Duration::from_secs(u64::from(settings.alerts.repeat_after_mins) * 60);
    if !alerts.due(condition, crate::clock::unix_secs(), repeat) {
        tracing::warn!("{subject} (mailed already within {} minutes)", settings.alerts.repeat_after_mins);
        return;
    }
    if let Err(e) = alerts.save(&file) {
        tracing::warn!("cannot record the alert in {}: {e}", file.display());
    }
    tell_admin(settings, subject, body);
}

/// `condition` is over (see [`alert`]).
pub fn alert_over(condition: &str) {
    use crate::state_file::StateFile;
    let file = Alerts::file();
    let mut alerts = Alerts::load(&file);
    if alerts.clear(condition) {
        if let Err(e) = alerts.save(&file) {
            tracing::warn!("cannot record the alert in {}: {e}", file.display());
        }
    }
}

/// Sends plain-text mail from the configured sender to one recipient.
pub struct Mailer {
    transport: SmtpTransport,
    server: String,
    from: Mailbox,
    to: Mailbox,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailer({} -> {} via {})", self.from, self.to, self.server)
    }
}

impl Mailer {
    /// Mail to the administrator (`admin_email`) through `smtp`; `password` is the secrets
    /// file's `smtp_password`, needed when `smtp.username` is set.
    pub fn from_settings(settings: &ClusterSettings, password: Option<&Secret>) -> Result<Self, NotifyError> {
        Self::new(&settings.smtp, password, &settings.admin_email)
    }

    /// Mail to `to` through `smtp`; `password` is used only with `smtp.username`.
    pub fn new(smtp: &Smtp, password: Option<&Secret>, to: &str) -> Result<Self, NotifyError> {
        let server = format!("{}:{}", smtp.host, smtp.port);
        let tls_err = |e: lettre::transport::smtp::Error| NotifyError::Send {
            server: server.clone(),
            to: to.to_string(),
            reason: format!("cannot set up TLS - {e}"),
        };
        let verified = || TlsParameters::new(smtp.host.clone()).map_err(tls_err);
        let mut builder = SmtpTransport::builder_dangerous(&smtp.host).port(smtp.port).timeout(Some(TIMEOUT));
        if let Some(user) = &smtp.username {
            let password = password.ok_or_else(|| NotifyError::NoPassword { user: user.clone() })?;
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        let tls = if smtp.port == 465 {
            Tls::Wrapper(verified()?)
        } else if smtp.username.is_some() {
            Tls::Required(verified()?)
        } else {
            let unverified = TlsParameters::builder(smtp.host.clone())
                .dangerous_accept_invalid_certs(true)
                .dangerous_accept_invalid_hostnames(true)
                .build()
                .map_err(tls_err)?;
            Tls::Opportunistic(unverified)
        };
        Ok(Self {
            transport: builder.tls(tls).build(),
            server,
            from: mailbox("smtp.from", &smtp.from)?,
            to: mailbox("admin_email", to)?,
        })
    }

    /// Sends one plain-text (UTF-8) message.
    pub fn send(&self, subject: &str, body: &str) -> Result<(), NotifyError> {
        let fail = |reason: String| NotifyError::Send {
            server: self.server.clone(),
            to: self.to.to_string(),
            reason,
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(self.to.clone())
            .subject(subject)
            // Without it, readers take the body for US-ASCII and garble any other letter.
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|e| fail(e.to_string()))?;
        self.transport.send(&message).map_err(|e| fail(e.to_string()))?;
        Ok(())
    }
}

fn mailbox(field: &'static str, address: &str) -> Result<Mailbox, NotifyError> {
    address.parse().map_err(|e: lettre::address::AddressError| NotifyError::Address {
        field,
        address: address.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_condition_is_mailed_once_per_period_and_at_once_when_it_returns() {
        let hour = Duration::from_secs(3600);
        let mut alerts = Alerts::default();
        assert!(alerts.due("uplink", 1000, hour), "first time: mailed");
        assert!(!alerts.due("uplink", 1000 + 3599, hour), "within the hour: not again");
        assert!(alerts.due("router-copy-old", 1100, hour), "another condition is its own");
        assert!(alerts.due("uplink", 1000 + 3600, hour), "an hour later: again");
        assert!(alerts.clear("uplink"));
        assert!(alerts.due("uplink", 4700, hour), "over, then back: mailed at once");
    }

    #[test]
    fn a_login_without_its_password_is_refused_before_any_connection() {
        let smtp = Smtp { username: Some("reports".into()), ..Smtp::default() };
        let err = Mailer::new(&smtp, None, "admin@example.com").unwrap_err();
        assert_eq!(
            err.to_string(),
            "smtp.username is 'reports' but the secrets file has no smtp_password; add it or remove the username"
        );
    }

    #[test]
    fn a_bad_address_names_its_setting() {
        let err = Mailer::new(&Smtp::default(), None, "admin").unwrap_err();
        assert!(err.to_string().starts_with("admin_email: 'admin' is not a valid mail address - "), "{err}");
    }

    #[test]
    fn debug_shows_no_password() {
        let smtp = Smtp { username: Some("reports".into()), ..Smtp::default() };
        let mailer = Mailer::new(&smtp, Some(&Secret::new("hunter2")), "admin@example.com").unwrap();
        assert_eq!(
            format!("{mailer:?}"),
            "Mailer(dlll-cias@localhost -> admin@example.com via localhost:25)"
        );
    }
}
