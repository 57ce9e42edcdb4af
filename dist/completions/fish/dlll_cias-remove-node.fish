complete -c dlll_cias-remove-node -l mail -d 'Also send the report to this address' -r
complete -c dlll_cias-remove-node -l config -d 'Cluster settings' -r -F
complete -c dlll_cias-remove-node -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-remove-node -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-remove-node -l dead -d 'NODE is powered off for sure: do not wait for the fence delay (asks first at a terminal)'
complete -c dlll_cias-remove-node -l yes -d 'Do not ask (needed with --dead when there is no terminal)'
complete -c dlll_cias-remove-node -l dry-run -d 'Show what would be done, with the exact commands; change nothing'
complete -c dlll_cias-remove-node -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dlll_cias-remove-node -s V -l version -d 'Print version'
