complete -c dlll_cias-switch-to-master -l config -d 'Cluster settings' -r -F
complete -c dlll_cias-switch-to-master -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-switch-to-master -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-switch-to-master -l from-keepalived -d 'Set by keepalived\'s notify_master hook: the VIPs already moved here'
complete -c dlll_cias-switch-to-master -l dry-run -d 'Show what would be done, with the exact commands; change nothing'
complete -c dlll_cias-switch-to-master -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dlll_cias-switch-to-master -s V -l version -d 'Print version'
