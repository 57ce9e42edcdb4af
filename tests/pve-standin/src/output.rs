//! pvesh output formats: JSON on one line with sorted keys (serde_json's maps are sorted),
//! Perl-style pretty JSON (3-space indent), YAML.

use serde_json::Value;

use crate::{args::param_error, Result};

pub fn print(value: &Value, format: Option<&str>) -> Result<()> {
    match format.unwrap_or("text") {
        "json" => println!("{value}"),
        "json-pretty" => {
            let mut out = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
            serde::Serialize::serialize(value, &mut ser).map_err(anyhow::Error::from)?;
            println!("{}", String::from_utf8_lossy(&out));
        }
        "yaml" => print!("{}", serde_yaml::to_string(value).map_err(anyhow::Error::from)?),
        "text" => print_text(value),
        other => {
            return Err(param_error(
                "output-format",
                &format!(
                "value '{other}' does not have a value in the enumeration 'text, json, json-pretty, yaml'"
            ),
            ))
        }
    }
    Ok(())
}

/// Text output for scalars and objects. (The real tool draws tables for lists; the toolkit
/// always asks for JSON, so lists print one JSON object a line here.)
fn print_text(value: &Value) {
    match value {
        Value::Null => {}
        Value::String(s) => println!("{s}"),
        Value::Object(map) => {
            for (k, v) in map {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                println!("{k}: {v}");
            }
        }
        Value::Array(items) => items.iter().for_each(|i| println!("{i}")),
        other => println!("{other}"),
    }
}
