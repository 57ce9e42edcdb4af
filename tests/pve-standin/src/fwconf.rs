//! Proxmox VE firewall files: `/etc/pve/firewall/cluster.fw`, `/etc/pve/firewall/<vmid>.fw` and
//! `/etc/pve/nodes/<node>/host.fw`, read as pve-firewall reads them
//! (`src/PVE/Firewall.pm`: `generic_fw_config_parser`, `parse_vmfw_option`,
//! `parse_clusterfw_option`, `parse_hostfw_option`, `parse_alias`, `parse_ip_or_cidr`).
//!
//! Lines are trimmed; `#` lines and blank lines are skipped. Section headers (any case):
//! `[OPTIONS]`, `[ALIASES]` (cluster, VM), `[RULES]`, `[IPSET name] # comment` (cluster, VM),
//! `[group name] # comment` (cluster). A header a file kind does not have is read as a line of
//! the current section, as there. Every problem is a warning naming `file (line N)` and the line
//! is skipped, never the file: an option that does not parse, an ipset entry with errors (kept,
//! marked, skipped when compiled). `[RULES]` and security groups are kept as text only: the
//! stand-in does not apply them, and says so for every rule.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Which file: each has its own sections and options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cluster,
    Host,
    Vm,
}

/// An IPv4 or IPv6 network; an address alone is a host network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub v6: bool,
    pub addr: u128,
    pub prefix: u8,
}

impl Net {
    /// `addr[/prefix]`, IPv4 or IPv6.
    pub fn parse(text: &str) -> Option<Net> {
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (text, None),
        };
        let (v6, addr, bits) = if let Ok(a) = ip.parse::<Ipv4Addr>() {
            (false, u128::from(u32::from(a)), 32)
        } else {
            (true, u128::from(ip.parse::<Ipv6Addr>().ok()?), 128)
        };
        let prefix = match prefix {
            None => bits,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= bits)?
            }
            Some(_) => return None,
        };
        Some(Net { v6, addr, prefix })
    }

    pub fn bits(&self) -> u8 {
        if self.v6 {
            128
        } else {
            32
        }
    }

    /// The first and the last address of the network.
    pub fn range(&self) -> (u128, u128) {
        let host_bits = u32::from(self.bits() - self.prefix);
        let mask = if host_bits == 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
        (self.addr & !mask, self.addr | mask)
    }
}

/// One line of an `[IPSET]`: `[!]cidr-or-alias [# comment]`; `!` is ipset's `nomatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsetEntry {
    /// As pve-firewall keeps it: the text with `/32` (`/128`) dropped, or an alias name.
    pub cidr: String,
    pub nomatch: bool,
    /// The network it stands for (an alias resolved); `None` when the entry has an error.
    pub net: Option<Net>,
    pub error: Option<String>,
}

/// One parsed file.
#[derive(Debug, Clone, Default)]
pub struct FwFile {
    /// Option name (lower case) -> value as pve-firewall stores it (`0`/`1`, `ACCEPT`, ...).
    pub options: BTreeMap<String, String>,
    /// Alias name (lower case) -> network.
    pub aliases: BTreeMap<String, Net>,
    /// Ipset name (lower case) -> entries in file order.
    pub ipsets: BTreeMap<String, Vec<IpsetEntry>>,
    /// Lines of `[RULES]` and security groups: kept, never applied.
    pub rules: Vec<String>,
    pub warnings: Vec<String>,
}

impl FwFile {
    /// A `0|1` option: `None` when not set.
    pub fn flag(&self, name: &str) -> Option<bool> {
        self.options.get(name).map(|v| v != "0")
    }

    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Options,
    Aliases,
    Rules,
    Group,
    Ipset,
}

const LOG_LEVELS: &[&str] = &["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "nolog"];
const IPSET_NAME_MAX: usize = 64;
const GROUP_NAME_MAX: usize = 18;

/// Parses `text` of the file `label` (its path, for messages). `cluster` is the parsed
/// cluster file, whose aliases ipset entries of a VM file may name. `None` for an empty file,
/// which pve-firewall treats as no file at all.
pub fn parse(label: &str, text: &str, kind: Kind, cluster: Option<&FwFile>) -> Option<FwFile> {
    if text.is_empty() {
        return None;
    }
    let mut file = FwFile::default();
    let mut section: Option<(Section, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_matches([' ', '\t']);
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let prefix = format!("{label} (line {})", index + 1);
        match header(line, kind) {
            Some(Ok(new)) => {
                if new.0 == Section::Ipset {
                    file.ipsets.insert(new.1.clone(), Vec::new());
                }
                section = Some(new);
                continue;
            }
            Some(Err(message)) => {
                file.warnings.push(format!("{prefix}: {message}"));
                section = None;
                continue;
            }
            None => {}
        }
        let Some((current, name)) = &section else {
            file.warnings.push(format!("{prefix}: skip line - no section"));
            continue;
        };
        match current {
            Section::Options => match parse_option(kind, line) {
                Some((name, value)) => {
                    file.options.insert(name, value);
                }
                None => file.warnings.push(format!("{prefix}: can't parse option '{line}'")),
            },
            Section::Aliases => match parse_alias(line) {
                Ok((name, net)) => {
                    file.aliases.insert(name, net);
                }
                Err(e) => file.warnings.push(format!("{prefix}: {e}")),
            },
            Section::Rules | Section::Group => {
                file.warnings.push(format!(
                    "{prefix}: rule not applied by the Proxmox stand-in (it emulates the \
                     anti-spoofing options and ipfilter ipsets only): {line}"
                ));
                file.rules.push(line.to_string());
            }
            Section::Ipset => {
                // In the cluster file, the cluster's aliases are the file's own.
                let dc =
                    if kind == Kind::Cluster { Some(&file.aliases) } else { cluster.map(|c| &c.aliases) };
                let earlier = file.ipsets.get(name).map(Vec::as_slice).unwrap_or_default();
                let entry = parse_ipset_entry(line, earlier, &file.aliases, dc);
                if let Some(e) = &entry.error {
                    file.warnings.push(format!("{prefix} - errors in ipset '{name}': {line}: {e}"));
                }
                file.ipsets.entry(name.clone()).or_default().push(entry);
            }
        }
    }
    Some(file)
}

/// A section header of this kind of file: `Some(Ok(section, name))`, `Some(Err(message))` for
/// a header with a bad name, `None` for any other line.
fn header(line: &str, kind: Kind) -> Option<std::result::Result<(Section, String), String>> {
    let lower = line.to_ascii_lowercase();
    let has = |s: Section| match kind {
        Kind::Cluster => true,
        Kind::Host => matches!(s, Section::Options | Section::Rules),
        Kind::Vm => s != Section::Group,
    };
    for (text, section) in
        [("[options]", Section::Options), ("[aliases]", Section::Aliases), ("[rules]", Section::Rules)]
    {
        if lower == text && has(section) {
            return Some(Ok((section, String::new())));
        }
    }
    for (word, section, max) in
        [("group", Section::Group, GROUP_NAME_MAX), ("ipset", Section::Ipset, IPSET_NAME_MAX)]
    {
        if !has(section) {
            continue;
        }
        if let Some(name) = named_header(line, word) {
            let name = name.to_ascii_lowercase();
            let what = if section == Section::Group { "security group" } else { "ipset" };
            if name.len() > max {
                return Some(Err(format!("{what} name too long")));
            }
            if !is_name(&name) {
                return Some(Err(format!("invalid {what} name '{name}'")));
            }
            return Some(Ok((section, name)));
        }
    }
    None
}

/// The name in `[word name]` or `[word name] # comment`.
fn named_header<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    let opening = line.get(..word.len() + 1)?;
    if !opening.eq_ignore_ascii_case(&format!("[{word}")) {
        return None;
    }
    let rest = &line[word.len() + 1..];
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = rest.trim_start();
    let close = rest.find(']')?;
    let (name, tail) = (&rest[..close], rest[close + 1..].trim_start());
    (!name.is_empty() && !name.contains(char::is_whitespace) && (tail.is_empty() || tail.starts_with('#')))
        .then_some(name)
}

/// pve-firewall's name pattern for ipsets, groups and aliases: `[A-Za-z][A-Za-z0-9\-\_]+`.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What values an option takes.
#[derive(Clone, Copy)]
enum Syntax {
    /// `0` or `1`.
    Bool,
    /// Digits.
    Number,
    /// `ACCEPT`, `DROP` or `REJECT`, any case (stored upper case).
    Policy,
    /// A log level or nothing (stored lower case).
    LogLevel,
    /// One word without blanks (`layer2_protocols`, `nf_conntrack_helpers`, `log_ratelimit`).
    Word,
    /// `N` or `N:M` (`ips_queues`).
    Queues,
}

fn syntax(kind: Kind, name: &str) -> Option<Syntax> {
    use Syntax::*;
    Some(match (kind, name) {
        (Kind::Vm, "enable" | "dhcp" | "ndp" | "radv" | "macfilter" | "ipfilter" | "ips") => Bool,
        (Kind::Vm, "log_level_in" | "log_level_out") => LogLevel,
        (Kind::Vm, "policy_in" | "policy_out") => Policy,
        (Kind::Vm, "ips_queues") => Queues,
        (Kind::Vm, "layer2_protocols") => Word,
        (Kind::Cluster, "enable") => Number,
        (Kind::Cluster, "ebtables") => Bool,
        (Kind::Cluster, "policy_in" | "policy_out" | "policy_forward") => Policy,
        (Kind::Cluster, "log_ratelimit") => Word,
        (
            Kind::Host,
            "enable"
            | "nosmurfs"
            | "tcpflags"
            | "ndp"
            | "log_nf_conntrack"
            | "nf_conntrack_allow_invalid"
            | "protection_synflood"
            | "nftables",
        ) => Bool,
        (
            Kind::Host,
            "log_level_in"
            | "log_level_out"
            | "log_level_forward"
            | "tcp_flags_log_level"
            | "smurf_log_level",
        ) => LogLevel,
        (Kind::Host, "nf_conntrack_helpers") => Word,
        (
            Kind::Host,
            "nf_conntrack_max"
            | "nf_conntrack_tcp_timeout_established"
            | "nf_conntrack_tcp_timeout_syn_recv"
            | "protection_synflood_rate"
            | "protection_synflood_burst"
            | "protection_limit",
        ) => Number,
        _ => return None,
    })
}

/// `name: value` -> (name, value as stored); `None` when pve-firewall "can't parse option".
fn parse_option(kind: Kind, line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once(':')?;
    // Option names match case-insensitively, except the cluster's `log_ratelimit`.
    let lower = name.to_ascii_lowercase();
    if kind == Kind::Cluster && lower == "log_ratelimit" && name != lower {
        return None;
    }
    let value = value.trim();
    let digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    let value = match syntax(kind, &lower)? {
        Syntax::Bool => matches!(value, "0" | "1").then(|| value.to_string())?,
        // Stored as Perl's int() leaves it: `007` is 7.
        Syntax::Number => digits(value).then(|| value.parse::<u64>().ok())??.to_string(),
        Syntax::Policy => {
            let upper = value.to_ascii_uppercase();
            matches!(upper.as_str(), "ACCEPT" | "DROP" | "REJECT").then_some(upper)?
        }
        Syntax::LogLevel => {
            let lower = value.to_ascii_lowercase();
            (lower.is_empty() || LOG_LEVELS.contains(&lower.as_str())).then_some(lower)?
        }
        Syntax::Word => {
            (!value.is_empty() && !value.contains(char::is_whitespace)).then(|| value.to_string())?
        }
        Syntax::Queues => {
            let ok = match value.split_once(':') {
                Some((a, b)) => digits(a) && digits(b),
                None => digits(value),
            };
            ok.then(|| value.to_string())?
        }
    };
    Some((lower, value))
}

/// `name cidr [# comment]` (exactly one blank between, as `parse_alias`).
fn parse_alias(line: &str) -> std::result::Result<(String, Net), String> {
    let line = line.split_once('#').map_or(line, |(l, _)| l).trim_end();
    let (name, cidr) =
        line.split_once(char::is_whitespace).ok_or_else(|| format!("can't parse alias '{line}'"))?;
    if cidr.is_empty() || cidr.contains(char::is_whitespace) {
        return Err(format!("can't parse alias '{line}'"));
    }
    let net = Net::parse(cidr).ok_or("value does not look like a valid IP address or CIDR network")?;
    Ok((name.to_ascii_lowercase(), net))
}

/// pve-firewall's `parse_ip_or_cidr`: the text with a host prefix (`/32`, `/128`) dropped.
fn normalized(cidr: &str, net: &Net) -> String {
    let host = if net.v6 { "/128" } else { "/32" };
    cidr.strip_suffix(host).unwrap_or(cidr).to_string()
}

/// One ipset line, checked as pve-firewall does: an alias must exist (the file's own, defined
/// above, then the cluster's `dc`; a `dc/` or `guest/` prefix chooses), a duplicate is an
/// error, and so is a zero prefix.
fn parse_ipset_entry(
    line: &str,
    earlier: &[IpsetEntry],
    own: &BTreeMap<String, Net>,
    dc: Option<&BTreeMap<String, Net>>,
) -> IpsetEntry {
    let line = line.split_once('#').map_or(line, |(l, _)| l).trim_end();
    let (nomatch, cidr) = match line.strip_prefix('!') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, line),
    };
    let mut entry = IpsetEntry { cidr: cidr.to_string(), nomatch, net: None, error: None };
    if cidr.is_empty() || cidr.contains(char::is_whitespace) {
        entry.error = Some("invalid ipset entry".into());
        return entry;
    }
    let (scope, alias) = match cidr.split_once('/') {
        Some((scope @ ("dc" | "guest"), rest)) => (Some(scope), rest),
        _ => (None, cidr),
    };
    if is_name(alias) {
        let alias = alias.to_ascii_lowercase();
        let own = (scope != Some("dc")).then(|| own.get(&alias)).flatten();
        let dc = (scope != Some("guest")).then(|| dc.and_then(|d| d.get(&alias))).flatten();
        match own.or(dc) {
            Some(net) => entry.net = Some(*net),
            None => entry.error = Some(format!("no such alias '{cidr}'")),
        }
    } else {
        match Net::parse(cidr) {
            Some(net) => {
                entry.cidr = normalized(cidr, &net);
                entry.net = Some(net);
            }
            None => entry.error = Some("value does not look like a valid IP address or CIDR network".into()),
        }
    }
    if entry.error.is_none() && earlier.iter().any(|e| e.cidr == entry.cidr) {
        entry.error = Some(format!("duplicate ipset entry for '{}'", entry.cidr));
    }
    if entry.cidr.rsplit_once('/').is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b == b'0')) {
        entry.error = Some("a zero prefix is not allowed in ipset entries".into());
    }
    if entry.error.is_some() {
        entry.net = None;
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pve-firewall's `debian/example/100.fw`, some rules and comments left out.
    const EXAMPLE_VM: &str = "# Example VM firewall configuration\n\n# VM specific firewall options\n[OPTIONS]\n\n\
        # disable/enable the whole thing\nenable: 1 \n\n# disable/enable MAC address filter\nmacfilter: 0\n\n\
        # limit layer2 specific protocols\nlayer2_protocols: ARP,802_1Q,IPX,NetBEUI,PPP\n\n# default policy\n\
        policy_in: DROP\npolicy_out: REJECT\n\n# log dropped incoming connection\nlog_level_in: info\n\n\
        # disable log for outgoing connections\nlog_level_out: nolog\n\n# enable DHCP\ndhcp: 1\n\n# enable ips\n\
        ips: 1\n\n# specify nfqueue queues (optionnal)\n#ips_queues: 0\nips_queues: 0:3\n\n\
        [IPSET ipfilter-net0] # only allow specified IPs on net0\n192.168.2.10\n\n[RULES]\n\n\
        #TYPE ACTION [OPTIONS]\n# -i      <INTERFACE>\n\nIN SSH(ACCEPT) -i net0\nIN SSH(ACCEPT) -i net0 # a comment\n\
        IN SSH(ACCEPT) -i net0 -source 192.168.2.192  # only allow SSH from  192.168.2.192\n\
        IN SSH(ACCEPT) -i net0 -source +mynetgroup   #accept ssh for ipset mynetgroup\n\
        IN ACCEPT -i net0 -p icmpv6\n\n|IN SSH(ACCEPT) -i net0 # disabled rule\n\n# add a security group\n\
        GROUP group1 -i net0\n\nOUT DNS(ACCEPT) -i net0\nOUT SSH(ACCEPT)\n\n\n\n";

    /// pve-firewall's `debian/example/cluster.fw`, some group rules left out.
    const EXAMPLE_CLUSTER: &str = "[OPTIONS]\n\n# enable firewall (cluster wide setting, default is disabled) \nenable: 1\n\n\
        # default policy for host rules\npolicy_in: DROP\npolicy_out: ACCEPT\n\n[ALIASES]\n\n\
        myserveralias 10.0.0.111\nmynetworkalias 10.0.0.0/24\nmyserveraliasipv6 2001:db8:0:85a3:0:0:ac1f:8001\n\
        myserveraliasipv6short 2001:db8:0:85a3::ac1f:8001\n\n\n[RULES]\n\nIN  SSH(ACCEPT) -i vmbr0\n\n[group group1]\n\n\
        IN  ACCEPT -p tcp -dport 22\nOUT ACCEPT -p tcp -dport 80\nOUT ACCEPT -p icmp\n\n[group group3]\n\n\
        IN  ACCEPT -source 10.0.0.1 \nIN  ACCEPT -source myserveralias\n\n[ipset myipset]\n\n\
        192.168.0.1 #mycomment\n172.16.0.10\n192.168.0.0/24\n! 10.0.0.0/8  #nomatch - needs kernel 3.7 or newer\n\
        mynetworkalias\n2001:db8:0:85a3::ac1f:8001\n2001:db8:0:85a3:0:0:ac1f:8002\n\n#global ipset blacklist\n\
        [ipset blacklist]\n\n10.0.0.8\n192.168.0.0/24\n2001:db8:0:85a3:0:0:ac1f:8001\n";

    /// pve-firewall's `debian/example/host.fw`.
    const EXAMPLE_HOST: &str = "# /etc/pve/local/host.fw\n\n[OPTIONS]\n\nenable: 0\ntcp_flags_log_level: info\n\
        smurf_log_level: nolog\nlog_level_in: info\nlog_level_out: info\n\n# allow more connections (default is 65536)\n\
        nf_conntrack_max: 196608\n\n# reduce conntrack established timeout (default is 432000 - 5days)\n\
        nf_conntrack_tcp_timeout_established: 7875\n\n# disable SMURFS filter\nnosmurfs: 0\n\n\
        # filter illegal combinations of TCP flags\ntcpflags: 1\n\n[RULES]\n\nIN  SSH(ACCEPT)\nOUT SSH(ACCEPT)\n";

    fn net(text: &str) -> Option<Net> {
        Net::parse(text)
    }

    #[test]
    fn the_example_vm_file_gives_its_options_ipset_and_rules() {
        let fw = parse("/etc/pve/firewall/100.fw", EXAMPLE_VM, Kind::Vm, None).unwrap();
        let options: Vec<(&str, &str)> = fw.options.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            options,
            [
                ("dhcp", "1"),
                ("enable", "1"),
                ("ips", "1"),
                ("ips_queues", "0:3"),
                ("layer2_protocols", "ARP,802_1Q,IPX,NetBEUI,PPP"),
                ("log_level_in", "info"),
                ("log_level_out", "nolog"),
                ("macfilter", "0"),
                ("policy_in", "DROP"),
                ("policy_out", "REJECT"),
            ]
        );
        assert_eq!(fw.flag("macfilter"), Some(false));
        let set = &fw.ipsets["ipfilter-net0"];
        assert_eq!(set.len(), 1);
        assert_eq!(
            (set[0].cidr.as_str(), set[0].nomatch, set[0].net),
            ("192.168.2.10", false, net("192.168.2.10"))
        );
        assert_eq!(fw.rules.len(), 9);
        assert_eq!(fw.rules[7], "OUT DNS(ACCEPT) -i net0");
        // Every rule is reported as not applied, nothing else is wrong.
        assert_eq!(fw.warnings.len(), 9, "{:#?}", fw.warnings);
        assert_eq!(
            fw.warnings[0],
            "/etc/pve/firewall/100.fw (line 43): rule not applied by the Proxmox stand-in (it emulates the \
             anti-spoofing options and ipfilter ipsets only): IN SSH(ACCEPT) -i net0"
        );
    }

    #[test]
    fn the_example_cluster_file_gives_aliases_groups_and_ipsets() {
        let fw = parse("cluster.fw", EXAMPLE_CLUSTER, Kind::Cluster, None).unwrap();
        assert_eq!(fw.option("enable"), Some("1"));
        assert_eq!(fw.option("policy_in"), Some("DROP"));
        assert_eq!(fw.aliases.len(), 4);
        assert_eq!(fw.aliases["mynetworkalias"], net("10.0.0.0/24").unwrap());
        assert_eq!(fw.aliases["myserveraliasipv6short"], fw.aliases["myserveraliasipv6"]);
        let set = &fw.ipsets["myipset"];
        let entries: Vec<(&str, bool)> = set.iter().map(|e| (e.cidr.as_str(), e.nomatch)).collect();
        assert_eq!(
            entries,
            [
                ("192.168.0.1", false),
                ("172.16.0.10", false),
                ("192.168.0.0/24", false),
                ("10.0.0.0/8", true),
                ("mynetworkalias", false),
                ("2001:db8:0:85a3::ac1f:8001", false),
                ("2001:db8:0:85a3:0:0:ac1f:8002", false),
            ]
        );
        assert_eq!(set[4].net, net("10.0.0.0/24"), "an alias entry stands for its network");
        assert!(set.iter().all(|e| e.error.is_none()));
        assert_eq!(fw.ipsets["blacklist"].len(), 3);
        // One rule and two security groups' five: kept, reported, not applied.
        assert_eq!(fw.rules.len(), 6);
        assert_eq!(fw.warnings.len(), 6, "{:#?}", fw.warnings);
    }

    #[test]
    fn the_example_host_file_parses_without_problems_but_its_rules() {
        let fw = parse("host.fw", EXAMPLE_HOST, Kind::Host, None).unwrap();
        assert_eq!(fw.flag("enable"), Some(false));
        assert_eq!(fw.option("nf_conntrack_max"), Some("196608"));
        assert_eq!(fw.option("smurf_log_level"), Some("nolog"));
        assert_eq!(fw.options.len(), 9);
        assert_eq!(fw.warnings.len(), 2, "only the two rules: {:#?}", fw.warnings);
        // What dlll-cias writes.
        let fw =
            parse("host.fw", "# Written by dlll-cias\n[OPTIONS]\nenable: 0\n", Kind::Host, None).unwrap();
        assert_eq!((fw.flag("enable"), fw.warnings.len()), (Some(false), 0));
    }

    #[test]
    fn an_option_that_does_not_parse_is_skipped_with_a_warning() {
        // pve-firewall's test/test-errors4/100.fw.
        let text = "[options]\n\ndafadfsdf: afda # unknown option - should be skipped\n\nenable: 1\n\n[rules]\n\nIN ACCEPT -p tcp -dport 80";
        let fw = parse("100.fw", text, Kind::Vm, None).unwrap();
        assert_eq!(fw.flag("enable"), Some(true));
        assert_eq!(
            fw.warnings[0],
            "100.fw (line 3): can't parse option 'dafadfsdf: afda # unknown option - should be skipped'"
        );
        for bad in ["enable: yes", "policy_in: allow", "macfilter 1", "ebtables: 1", "log_level_in: loud"] {
            let fw = parse("100.fw", &format!("[OPTIONS]\n{bad}\n"), Kind::Vm, None).unwrap();
            assert!(fw.options.is_empty() && fw.warnings.len() == 1, "{bad}: {fw:?}");
        }
        // Names any case, values as pve-firewall stores them.
        let fw = parse("100.fw", "[Options]\nENABLE: 1\nPolicy_In: accept\n", Kind::Vm, None).unwrap();
        assert_eq!((fw.option("enable"), fw.option("policy_in")), (Some("1"), Some("ACCEPT")));
        let fw = parse("cluster.fw", "[OPTIONS]\nenable: 0001\nebtables: 0\n", Kind::Cluster, None).unwrap();
        assert_eq!((fw.option("enable"), fw.flag("ebtables")), (Some("1"), Some(false)));
    }

    #[test]
    fn ipset_entries_with_errors_are_kept_and_marked() {
        let cluster = parse("cluster.fw", "[ALIASES]\nlan 10.0.0.0/8\n", Kind::Cluster, None).unwrap();
        let text = "[IPSET ipfilter-net0] # the VM's own\n10.0.1.1\n10.0.1.1/32\n0.0.0.0/0\n!::/00\n10.0.1.300\n\
                    lan\nguest/lan\nlater\n! dc/lan # the cluster's alias, excluded\n[ALIASES]\nlater 10.9.9.9\n";
        let fw = parse("101.fw", text, Kind::Vm, Some(&cluster)).unwrap();
        let got: Vec<(&str, bool, Option<&str>)> = fw.ipsets["ipfilter-net0"]
            .iter()
            .map(|e| (e.cidr.as_str(), e.nomatch, e.error.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.1.1", false, None),
                ("10.0.1.1", false, Some("duplicate ipset entry for '10.0.1.1'")),
                ("0.0.0.0/0", false, Some("a zero prefix is not allowed in ipset entries")),
                ("::/00", true, Some("a zero prefix is not allowed in ipset entries")),
                ("10.0.1.300", false, Some("value does not look like a valid IP address or CIDR network")),
                ("lan", false, None),
                ("guest/lan", false, Some("no such alias 'guest/lan'")),
                ("later", false, Some("no such alias 'later'")),
                ("dc/lan", true, None),
            ]
        );
        assert!(fw.ipsets["ipfilter-net0"].iter().all(|e| e.error.is_some() == e.net.is_none()));
        assert_eq!(fw.warnings.len(), 6, "{:#?}", fw.warnings);
        assert_eq!(
            fw.warnings[0],
            "101.fw (line 3) - errors in ipset 'ipfilter-net0': 10.0.1.1/32: duplicate ipset entry for '10.0.1.1'"
        );
    }

    #[test]
    fn headers_a_file_kind_lacks_and_bad_names_are_reported() {
        let text = "enable: 1\n[OPTIONS]\nenable: 1\n[group web]\n[IPSET 9bad]\n10.0.0.1\n[ipset ok-name]\n10.0.0.2\n";
        let fw = parse("101.fw", text, Kind::Vm, None).unwrap();
        assert_eq!(
            fw.warnings,
            [
                "101.fw (line 1): skip line - no section",
                "101.fw (line 4): can't parse option '[group web]'",
                "101.fw (line 5): invalid ipset name '9bad'",
                "101.fw (line 6): skip line - no section",
            ]
        );
        assert_eq!(fw.ipsets.keys().collect::<Vec<_>>(), ["ok-name"]);
        assert!(parse("101.fw", "", Kind::Vm, None).is_none(), "an empty file is no file");
    }

    #[test]
    fn networks_parse_with_their_ranges() {
        assert_eq!(net("10.0.1.1").unwrap().range(), (0x0a00_0101, 0x0a00_0101));
        assert_eq!(net("10.251.7.9/16").unwrap().range(), (0x0afb_0000, 0x0afb_ffff));
        assert_eq!(net("0.0.0.0/0").unwrap().range(), (0, 0xffff_ffff));
        assert_eq!(net("fe80::/10").unwrap().range().0, 0xfe80 << 112);
        assert_eq!(net("::/0").unwrap().range(), (0, u128::MAX));
        for bad in ["10.0.0.1/33", "10.0.0/8", "10.0.0.1/", "10.0.0.1/a", "host", "::1/129"] {
            assert_eq!(net(bad), None, "{bad}");
        }
    }
}
