//! The completion mail to the administrator.

use anyhow::Result;
use cias_core::notify::Mailer;
use cias_core::settings::{ClusterSettings, Secrets};

pub fn send(settings: &ClusterSettings, secrets: &Secrets, subject: &str, body: &str) -> Result<()> {
    let body = cias_core::notify::with_takeover_note(&cias_core::host::LocalHost::new("localhost"), body);
    Mailer::from_settings(settings, secrets.smtp_password.as_ref())?.send(subject, &body)?;
    tracing::info!("mail sent to {}: {subject}", settings.admin_email);
    Ok(())
}
