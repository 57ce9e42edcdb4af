//! Configuration files rendered from `templates/` with minijinja.
//!
//! The shipped templates are embedded in the binaries; an administrator overrides one by
//! putting a file of the same relative name under `/data/cias/templates/`. Undefined
//! variables are errors (strict mode), so a template never renders a silent blank.
//! [`contexts`] builds the typed values each template is rendered with.

pub mod contexts;

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use thiserror::Error;

/// The shipped templates: relative name and text.
pub const SHIPPED: &[(&str, &str)] = &[
    ("keepalived/keepalived.conf.j2", include_str!("../../../../templates/keepalived/keepalived.conf.j2")),
    ("moosefs/mfsmaster.cfg.j2", include_str!("../../../../templates/moosefs/mfsmaster.cfg.j2")),
    ("moosefs/mfsexports.cfg.j2", include_str!("../../../../templates/moosefs/mfsexports.cfg.j2")),
    ("moosefs/mfsmetalogger.cfg.j2", include_str!("../../../../templates/moosefs/mfsmetalogger.cfg.j2")),
    ("moosefs/mfschunkserver.cfg.j2", include_str!("../../../../templates/moosefs/mfschunkserver.cfg.j2")),
    ("moosefs/mfshdd.cfg.j2", include_str!("../../../../templates/moosefs/mfshdd.cfg.j2")),
    ("moosefs/mfsmount.cfg.j2", include_str!("../../../../templates/moosefs/mfsmount.cfg.j2")),
    ("cron/dlll-cias.cron.j2", include_str!("../../../../templates/cron/dlll-cias.cron.j2")),
    ("network/interfaces.j2", include_str!("../../../../templates/network/interfaces.j2")),
    ("nftables/dlll-cias.nft.j2", include_str!("../../../../templates/nftables/dlll-cias.nft.j2")),
    (
        "systemd/dlll-cias-firewall.service.j2",
        include_str!("../../../../templates/systemd/dlll-cias-firewall.service.j2"),
    ),
    (
        "systemd/dlll-cias-fence.service.j2",
        include_str!("../../../../templates/systemd/dlll-cias-fence.service.j2"),
    ),
    (
        "systemd/moosefs-master.override.conf.j2",
        include_str!("../../../../templates/systemd/moosefs-master.override.conf.j2"),
    ),
    (
        "systemd/keepalived.override.conf.j2",
        include_str!("../../../../templates/systemd/keepalived.override.conf.j2"),
    ),
];

#[derive(Debug, Error)]
pub enum TemplateError {
    #[error("unknown template '{0}'")]
    Unknown(String),
    #[error("cannot read template override {file} - {reason}")]
    Override { file: PathBuf, reason: std::io::Error },
    #[error("template '{name}'{} could not be rendered - {message}", origin.as_ref().map(|f| format!(" (from {})", f.display())).unwrap_or_default())]
    Render { name: String, origin: Option<PathBuf>, message: String },
}

/// The template set: shipped templates, each replaceable by a file in the override directory.
#[derive(Debug, Clone)]
pub struct Templates {
    override_dir: Option<PathBuf>,
}

impl Templates {
    /// Only the shipped templates.
    pub fn shipped() -> Self {
        Self { override_dir: None }
    }

    /// Shipped templates, overridden by files under `dir` (e.g. `/data/cias/templates`).
    pub fn with_overrides(dir: &Path) -> Self {
        Self { override_dir: Some(dir.to_path_buf()) }
    }

    /// Renders template `name` with `context`.
    pub fn render(&self, name: &str, context: &impl Serialize) -> Result<String, TemplateError> {
        let (source, origin) = self.source(name)?;
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        let render_err = |e: minijinja::Error| TemplateError::Render {
            name: name.to_string(),
            origin: origin.clone(),
            message: format!("{e:#}"),
        };
        env.add_template_owned(name.to_string(), source).map_err(render_err)?;
        env.get_template(name).and_then(|t| t.render(context)).map_err(render_err)
    }

    /// The template text and, when overridden, the file it came from.
    fn source(&self, name: &str) -> Result<(String, Option<PathBuf>), TemplateError> {
        let shipped = SHIPPED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| *text)
            .ok_or_else(|| TemplateError::Unknown(name.to_string()))?;
        if let Some(dir) = &self.override_dir {
            let file = dir.join(name);
            match std::fs::read_to_string(&file) {
                Ok(text) => return Ok((text, Some(file))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(TemplateError::Override { file, reason: source }),
            }
        }
        Ok((shipped.to_string(), None))
    }
}

#[cfg(test)]
mod tests;
