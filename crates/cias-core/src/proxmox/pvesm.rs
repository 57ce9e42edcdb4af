//! `pvesm status` and `pvesm scan nfs`: storages as this node sees them, a server's exports.

/// One row of `pvesm status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRow {
    pub id: String,
    pub kind: String,
    /// `active`, `inactive` or `disabled`.
    pub status: String,
}

/// `pvesm status` (pvesm.pm's `$print_status`: a header, then `NAME TYPE STATUS TOTAL ...`).
pub fn parse_status(text: &str) -> Vec<StorageRow> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some(StorageRow { id: words.next()?.into(), kind: words.next()?.into(), status: words.next()?.into() })
        })
        .collect()
}

/// `pvesm scan nfs SERVER`: `PATH CLIENTS` lines (pvesm.pm prints the path padded).
pub fn parse_scan_nfs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .filter(|(path, _)| path.starts_with('/'))
        .map(|(path, clients)| (path.to_string(), clients.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rows_and_exports_are_read() {
        let status = "Name             Type     Status     Total (KiB)      Used (KiB) Available (KiB)        %\n\
                      a_mfs             dir     active       102687672        10485760        86942648   10.21%\n\
                      nfs1              nfs   inactive               0               0               0    0.00%\n";
        let rows = parse_status(status);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], StorageRow { id: "nfs1".into(), kind: "nfs".into(), status: "inactive".into() });
        let scan = parse_scan_nfs("/srv/nfs   10.0.0.0/24\n/srv/other *\n");
        assert_eq!(scan, [("/srv/nfs".to_string(), "10.0.0.0/24".to_string()), ("/srv/other".into(), "*".into())]);
    }
}
