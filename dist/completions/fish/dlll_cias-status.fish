complete -c dlll_cias-status -l config -d 'The cluster settings' -r -F
complete -c dlll_cias-status -l json -d 'Print one JSON object (schema above) instead of the table'
complete -c dlll_cias-status -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-status -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-status -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dlll_cias-status -s V -l version -d 'Print version'
