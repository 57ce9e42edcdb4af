//! Scenario tests on a virtual clock compare the whole readable log of a run with the expected
//! one, written indented in the test.

/// Fails unless `got` is `expected` with its blank lines and the test's 8-space indent removed.
pub fn assert_log(got: &str, expected: &str) {
    let expected: String = expected
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("        ").unwrap_or(l)))
        .collect();
    assert_eq!(got, expected, "\n--- got:\n{got}\n--- expected:\n{expected}");
}
