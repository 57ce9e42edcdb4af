complete -c dlll_cias-backup-zentyal -l config -d 'Cluster settings' -r -F
complete -c dlll_cias-backup-zentyal -l backup -d 'Run `vzdump 100` to the mfs-backup storage (on the node that runs VM 100)'
complete -c dlll_cias-backup-zentyal -l local-copy -d 'Copy the newest router archive from /mnt/mfs/dump to /var/lib/vz/dump'
complete -c dlll_cias-backup-zentyal -l dry-run -d 'Print the commands that would change something; change nothing'
complete -c dlll_cias-backup-zentyal -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-backup-zentyal -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-backup-zentyal -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dlll_cias-backup-zentyal -s V -l version -d 'Print version'
