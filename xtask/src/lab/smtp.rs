//! The lab's mail server: Debian's aiosmtpd (python3-aiosmtpd) in its own namespace on the LAN,
//! storing every message it accepts in a Maildir on the host for tests to read. It accepts
//! any sender and recipient and relays nothing.

use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Result};

use super::addr::{SMTP_IP, SMTP_NETNS, SMTP_PORT};
use super::cgroup::Group;
use super::layout::{maildir, smtp_log};
use super::run::cmd;

pub fn cgroup() -> Group {
    Group::new("mail")
}

pub fn start() -> Result<()> {
    // aiosmtpd creates the Maildir's subdirectories only when it creates the Maildir itself.
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(maildir().join(sub))?;
    }
    let listen = format!("{SMTP_IP}:{SMTP_PORT}");
    let dir = maildir().display().to_string();
    let argv: Vec<String> = [
        "ip",
        "netns",
        "exec",
        SMTP_NETNS,
        // Debian's python, where python3-aiosmtpd lives (PATH may find another).
        "/usr/bin/python3",
        "-m",
        "aiosmtpd",
        "--nosetuid",
        "--listen",
        &listen,
        "--class",
        "aiosmtpd.handlers.Mailbox",
        &dir,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let group = cgroup();
    group.spawn(&argv, false, &smtp_log())?;
    // Ready when it listens; a slow python start must not make the first test mail fail.
    let deadline = Instant::now() + Duration::from_secs(20);
    let filter = format!("sport = :{SMTP_PORT}");
    while Instant::now() < deadline {
        let out = cmd(["ip", "netns", "exec", SMTP_NETNS, "ss", "-Hltn", &filter]).run()?;
        if !out.trim().is_empty() {
            return Ok(());
        }
        if !group.populated() {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    let log = fs::read_to_string(smtp_log()).unwrap_or_default();
    bail!("the lab's SMTP server did not start: {log}")
}

/// A message as the SMTP server stored it (aiosmtpd adds `X-Peer`, `X-MailFrom`, `X-RcptTo`).
#[derive(Debug, Clone)]
pub struct Mail {
    pub raw: String,
    pub received: SystemTime,
}

impl Mail {
    /// The first header of that name (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\n\n").next().unwrap_or_default();
        let mut found: Option<String> = None;
        for line in head.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(value) = found.as_mut() {
                if line.starts_with([' ', '\t']) {
                    value.push(' ');
                    value.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((key, value)) = line.split_once(':') {
                if key.eq_ignore_ascii_case(name) {
                    found = Some(value.trim().to_string());
                }
            }
        }
        found
    }

    /// The body as its reader sees it: quoted-printable decoded (lettre folds long lines so).
    pub fn body(&self) -> String {
        let raw = self.raw.replace("\r\n", "\n");
        let body = raw.split_once("\n\n").map(|(_, body)| body.to_string()).unwrap_or_default();
        let encoding = self.header("Content-Transfer-Encoding").unwrap_or_default();
        if encoding.eq_ignore_ascii_case("quoted-printable") {
            decode_quoted_printable(&body)
        } else {
            body
        }
    }
}

/// RFC 2045 section 6.7: `=` at a line's end joins it to the next; `=XX` is the byte 0xXX.
fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex =
            bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every message received so far, oldest first.
pub fn messages() -> Result<Vec<Mail>> {
    let mut mails = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = fs::read_dir(maildir().join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let received = entry.metadata()?.modified()?;
            let raw = String::from_utf8_lossy(&fs::read(entry.path())?).into_owned();
            mails.push(Mail { raw, received });
        }
    }
    mails.sort_by_key(|m| m.received);
    Ok(mails)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_body() {
        let mail = Mail {
            raw: "Subject: hello\n world\nTo: a@b\n\nline 1\nline 2\n".into(),
            received: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(mail.header("subject").as_deref(), Some("hello world"));
        assert_eq!(mail.header("To").as_deref(), Some("a@b"));
        assert_eq!(mail.header("From"), None);
        assert_eq!(mail.body(), "line 1\nline 2\n");
        let folded = Mail {
            raw: "Content-Transfer-Encoding: quoted-printable\n\nrestored on node3 from /mnt/mfs/dum=\np/x, caf=C3=A9 =3D ok\n"
                .into(),
            received: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(folded.body(), "restored on node3 from /mnt/mfs/dump/x, café = ok\n");
    }
}
