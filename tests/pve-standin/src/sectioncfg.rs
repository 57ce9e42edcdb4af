//! Proxmox "section config" files (`storage.cfg`, `jobs.cfg`): `type: id` headers followed by
//! tab-indented `key value` lines, sections separated by blank lines.

use std::collections::BTreeMap;
use std::path::Path;

use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub id: String,
    pub props: BTreeMap<String, String>,
}

pub fn read(path: &Path, default: &str) -> Result<Vec<Section>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => default.to_string(),
        Err(e) => return Err(e.into()),
    };
    Ok(parse(&text))
}

pub fn parse(text: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if let Some(section) = sections.last_mut() {
                let (key, value) = line.trim().split_once(char::is_whitespace).unwrap_or((line.trim(), ""));
                section.props.insert(key.to_string(), value.trim().to_string());
            }
        } else if let Some((kind, id)) = line.split_once(':') {
            sections.push(Section { kind: kind.trim().into(), id: id.trim().into(), props: BTreeMap::new() });
        }
    }
    sections
}

/// Writes sections; keys named in `first` come first (in that order), the rest sorted.
pub fn write(path: &Path, sections: &[Section], first: &[&str]) -> Result<()> {
    let mut out = String::new();
    for s in sections {
        out += &format!("{}: {}\n", s.kind, s.id);
        let leading = first.iter().filter_map(|k| s.props.get_key_value(*k));
        let rest = s.props.iter().filter(|(k, _)| !first.contains(&k.as_str()));
        for (k, v) in leading.chain(rest) {
            out += &format!("\t{k} {v}\n");
        }
        out += "\n";
    }
    std::fs::write(path, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_cfg_round_trips_in_the_reference_layout() {
        let sample = "vzdump: weekly\n\tschedule sun 02:00\n\tall 1\n\tcompress zstd\n\tenabled 1\n\tmode snapshot\n\tprune-backups keep-last=4\n\tstorage a_mfs\n\n";
        let sections = parse(sample);
        assert_eq!(sections[0].props["schedule"], "sun 02:00");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jobs.cfg");
        write(&file, &sections, &["schedule"]).unwrap();
        assert_eq!(std::fs::read_to_string(file).unwrap(), sample);
    }
}
