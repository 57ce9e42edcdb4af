//! Finds the line of a field in YAML text, so validation errors can point at it.
//! serde gives lines only for syntax errors; validation happens after deserialising.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// The 1-based line of a dotted field path such as `external.router_vm_ips[2]`; when the exact
/// field is absent (a default), the line of its nearest present parent.
pub fn line_of(text: &str, field: &str) -> Option<usize> {
    let wanted: Vec<String> = field
        .split('.')
        .flat_map(|part| match part.split_once('[') {
            Some((key, index)) => vec![key.to_string(), index.trim_end_matches(']').to_string()],
            None => vec![part.to_string()],
        })
        .collect();
    let mut walker = Walker { stack: Vec::new(), found: Vec::new() };
    Parser::new_from_str(text).load(&mut walker, false).ok()?;
    (1..=wanted.len()).rev().find_map(|depth| {
        walker.found.iter().find(|(path, _)| path[..] == wanted[..depth]).map(|(_, line)| *line)
    })
}

enum Frame {
    /// Inside a mapping: the key being read (None while expecting a key).
    Map(Option<String>),
    /// Inside a sequence: the index of the next item.
    Seq(usize),
}

struct Walker {
    stack: Vec<Frame>,
    /// Every node path seen, with the line where its key (or item) starts.
    found: Vec<(Vec<String>, usize)>,
}

impl Walker {
    fn path_with(&self, last: String) -> Vec<String> {
        let mut path: Vec<String> = self
            .stack
            .iter()
            .take(self.stack.len().saturating_sub(1))
            .filter_map(|frame| match frame {
                Frame::Map(key) => key.clone(),
                Frame::Seq(i) => Some(i.saturating_sub(1).to_string()),
            })
            .collect();
        path.push(last);
        path
    }

    /// A value (scalar or collection start) arrived at `mark`.
    fn value_starts(&mut self, mark: Marker) {
        if let Some(Frame::Seq(i)) = self.stack.last_mut() {
            let index = *i;
            *i += 1;
            let path = self.path_with(index.to_string());
            self.found.push((path, mark.line()));
        }
    }

    /// A value finished: the enclosing mapping now expects its next key.
    fn value_ends(&mut self) {
        if let Some(Frame::Map(key)) = self.stack.last_mut() {
            *key = None;
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map(None)) = self.stack.last() {
                    let path = self.path_with(value.clone());
                    self.found.push((path, mark.line()));
                    self.stack.pop();
                    self.stack.push(Frame::Map(Some(value)));
                } else {
                    self.value_starts(mark);
                    self.value_ends();
                }
            }
            Event::MappingStart(..) => {
                self.value_starts(mark);
                self.stack.push(Frame::Map(None));
            }
            Event::SequenceStart(..) => {
                self.value_starts(mark);
                self.stack.push(Frame::Seq(0));
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_ends();
            }
            Event::Alias(_) => {
                self.value_starts(mark);
                self.value_ends();
            }
            _ => {}
        }
    }
}
