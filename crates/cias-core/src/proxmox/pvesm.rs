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

/// Where Proxmox keeps the cluster's storages (a section config).
pub const STORAGE_CFG: &str = "/etc/pve/storage.cfg";

/// The `server` and `export` of NFS storage `id` in storage.cfg's text (`nfs: ID` then
/// tab-indented `key value` lines).
pub fn nfs_target(storage_cfg: &str, id: &str) -> Option<(String, String)> {
    let header = format!("nfs: {id}");
    let mut lines = storage_cfg.lines().skip_while(|l| l.trim_end() != header).skip(1);
    let props: Vec<(&str, &str)> = lines
        .by_ref()
        .take_while(|l| l.starts_with(char::is_whitespace) && !l.trim().is_empty())
        .filter_map(|l| l.trim().split_once(char::is_whitespace))
        .collect();
    let get = |key: &str| props.iter().find(|(k, _)| *k == key).map(|(_, v)| v.trim().to_string());
    Some((get("server")?, get("export")?))
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
        let cfg = "dir: local\n\tpath /var/lib/vz\n\nnfs: nas1\n\texport /srv/nfs\n\tpath /mnt/pve/nas1\n\tserver 10.253.1.1\n\tcontent backup\n\n";
        assert_eq!(nfs_target(cfg, "nas1"), Some(("10.253.1.1".into(), "/srv/nfs".into())));
        assert_eq!(nfs_target(cfg, "local"), None);
        let scan = parse_scan_nfs("/srv/nfs   10.0.0.0/24\n/srv/other *\n");
        assert_eq!(scan, [("/srv/nfs".to_string(), "10.0.0.0/24".to_string()), ("/srv/other".into(), "*".into())]);
    }
}
