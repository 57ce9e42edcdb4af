//! POSIX shell quoting, used once: where an argv vector becomes an SSH command line.

/// Quotes one argument so a POSIX shell reads it back unchanged.
pub fn quote(arg: &str) -> String {
    let plain =
        !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./=:,@%+".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Quotes and joins an argv vector into one shell line.
pub fn join(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_plain() {
        assert_eq!(quote("pvecm"), "pvecm");
        assert_eq!(quote("--link0=10.254.0.1"), "--link0=10.254.0.1");
    }

    #[test]
    fn everything_else_is_single_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("sun 02:00"), "'sun 02:00'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(quote("a;b|c&d`e`"), "'a;b|c&d`e`'");
        assert_eq!(quote("*"), "'*'");
    }
}
