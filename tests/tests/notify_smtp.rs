//! `notify::Mailer` against a real SMTP server on loopback (aiosmtpd): what arrives, and how
//! an unreachable server fails.

use std::time::{Duration, Instant};

use cias_core::notify::{Mailer, NotifyError, TIMEOUT};
use cias_core::settings::Smtp;
use cias_tests::smtpd::Smtpd;

fn relay(port: u16) -> Smtp {
    Smtp { host: "127.0.0.1".into(), port, from: "cias@node1.example.com".into(), username: None }
}

/// Waits for the one message the server should hold (aiosmtpd stores it as it answers).
fn the_message(smtpd: &Smtpd) -> cias_tests::smtpd::Mail {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mails = smtpd.messages().unwrap();
        if !mails.is_empty() || Instant::now() > deadline {
            assert_eq!(mails.len(), 1, "{}", smtpd.log());
            return mails.into_iter().next().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_report_arrives_with_sender_recipient_subject_and_body() {
    let smtpd = Smtpd::start().expect("aiosmtpd starts");
    let mailer = Mailer::new(&relay(smtpd.port()), None, "admin@example.com").unwrap();
    let body = "node1 took over at 12:00:03.\nVMs started: 10501, 10502\nÜmlaut survives.\n";
    mailer.send("dlll-cias: takeover on node1", body).unwrap_or_else(|e| panic!("{e}\n{}", smtpd.log()));
    let mail = the_message(&smtpd);
    assert_eq!(mail.header("From").as_deref(), Some("cias@node1.example.com"));
    assert_eq!(mail.header("To").as_deref(), Some("admin@example.com"));
    assert_eq!(mail.header("Subject").as_deref(), Some("dlll-cias: takeover on node1"));
    assert_eq!(mail.header("X-MailFrom").as_deref(), Some("cias@node1.example.com"));
    assert_eq!(mail.header("X-RcptTo").as_deref(), Some("admin@example.com"));
    // Mostly ASCII with one umlaut: lettre sends it quoted-printable, UTF-8.
    assert_eq!(mail.header("Content-Type").as_deref(), Some("text/plain; charset=utf-8"), "{}", mail.raw);
    assert_eq!(mail.header("Content-Transfer-Encoding").as_deref(), Some("quoted-printable"), "{}", mail.raw);
    // The mailbox ends the stored message with one more newline than was sent.
    assert_eq!(decode_quoted_printable(&mail.body()).trim_end(), body.trim_end(), "{}", mail.raw);
}

#[test]
fn starttls_is_used_when_offered_even_with_a_self_signed_certificate() {
    let smtpd = Smtpd::start_tls_required().expect("aiosmtpd starts");
    let mailer = Mailer::new(&relay(smtpd.port()), None, "admin@example.com").unwrap();
    mailer.send("over TLS", "hello\n").unwrap_or_else(|e| panic!("{e}\n{}", smtpd.log()));
    assert_eq!(the_message(&smtpd).header("Subject").as_deref(), Some("over TLS"));
}

#[test]
fn from_settings_sends_to_the_admin_address() {
    let smtpd = Smtpd::start().expect("aiosmtpd starts");
    let yaml = format!(
        "domain: example.com\nadmin_email: root@example.com\nexternal:\n  network: 192.168.56.0/24\n  \
         gateway: 192.168.56.1\n  master_ip: 192.168.56.101\n  router_proxmox_ip: 192.168.56.102\n  \
         router_nas_ip: 192.168.56.103\n  router_vm_ips: [192.168.56.104]\nsmtp:\n  host: 127.0.0.1\n  \
         port: {}\n  from: cias@example.com\n",
        smtpd.port()
    );
    let settings = settings_from(&yaml);
    Mailer::from_settings(&settings, None).unwrap().send("install report", "ok\n").unwrap();
    assert_eq!(the_message(&smtpd).header("To").as_deref(), Some("root@example.com"));
}

#[test]
fn an_unreachable_server_is_an_error_naming_it_and_the_recipient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mailer = Mailer::new(&relay(port), None, "admin@example.com").unwrap();
    let started = Instant::now();
    let err = mailer.send("s", "b").unwrap_err();
    assert!(started.elapsed() < TIMEOUT, "took {:?}", started.elapsed());
    assert!(matches!(err, NotifyError::Send { .. }), "{err}");
    let prefix = format!("cannot send mail to admin@example.com through 127.0.0.1:{port} - ");
    assert!(err.to_string().starts_with(&prefix), "{err}");
}

#[test]
fn a_server_that_never_answers_is_given_up_after_the_timeout() {
    // Accepts connections (the kernel does) but never sends the SMTP greeting.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mailer = Mailer::new(&relay(port), None, "admin@example.com").unwrap();
    let started = Instant::now();
    let err = mailer.send("s", "b").unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= TIMEOUT - Duration::from_secs(1) && took < TIMEOUT + Duration::from_secs(5),
        "took {took:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("cannot send mail to admin@example.com through 127.0.0.1:{port} - ")),
        "{err}"
    );
}

fn settings_from(yaml: &str) -> cias_core::settings::ClusterSettings {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cias.yaml");
    std::fs::write(&file, yaml).unwrap();
    cias_core::settings::ClusterSettings::load(&file).unwrap()
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("\r\n", "\n").replace("=\n", "");
    let mut out = Vec::new();
    let mut bytes = joined.bytes();
    while let Some(b) = bytes.next() {
        if b == b'=' {
            let hex: String =
                [bytes.next().unwrap(), bytes.next().unwrap()].iter().map(|&c| c as char).collect();
            out.push(u8::from_str_radix(&hex, 16).unwrap());
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).unwrap()
}
