//! Proxmox-style arguments: positionals and `--key value` / `--key=value` options.

use std::collections::BTreeMap;

use crate::{Failure, Result};

#[derive(Debug, Default)]
pub struct Args {
    pub positional: Vec<String>,
    pub options: BTreeMap<String, String>,
}

/// Options that take no value (flags given alone mean 1).
const FLAGS: &[&str] =
    &["online", "force", "unique", "with-local-disks", "silent", "noproxy", "all", "skiplock", "debug"];

impl Args {
    pub fn parse(raw: &[String]) -> Result<Self> {
        let mut args = Args::default();
        let mut i = 0;
        while i < raw.len() {
            let word = &raw[i];
            if let Some(name) =
                word.strip_prefix("--").or_else(|| word.strip_prefix('-').filter(|n| n.len() > 1))
            {
                if let Some((key, value)) = name.split_once('=') {
                    args.options.insert(key.to_string(), value.to_string());
                } else if FLAGS.contains(&name) && raw.get(i + 1).is_none_or(|next| next.starts_with('-')) {
                    args.options.insert(name.to_string(), "1".to_string());
                } else {
                    let value = raw.get(i + 1).ok_or_else(|| param_error(name, "option requires a value"))?;
                    args.options.insert(name.to_string(), value.clone());
                    i += 1;
                }
            } else {
                args.positional.push(word.clone());
            }
            i += 1;
        }
        Ok(args)
    }

    pub fn opt(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.opt(key), Some("1" | "yes" | "true"))
    }

    pub fn pos(&self, index: usize, name: &str) -> Result<&str> {
        self.positional
            .get(index)
            .map(String::as_str)
            .ok_or_else(|| param_error(name, "property is missing and it is not optional"))
    }
}

/// `400 Parameter verification failed.` as the real tools print it.
pub fn param_error(param: &str, reason: &str) -> Failure {
    Failure::die(format!("400 Parameter verification failed.\n{param}: {reason}\n"))
}
