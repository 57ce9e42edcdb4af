complete -c dlll_cias-escape -l mail -d 'Also send the report to this address' -r
complete -c dlll_cias-escape -l parallel -d 'How many VMs migrate at once' -r
complete -c dlll_cias-escape -l config -d 'Cluster settings' -r -F
complete -c dlll_cias-escape -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-escape -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-escape -l yes -d 'Do not ask for confirmation (needed without a terminal)'
complete -c dlll_cias-escape -l dry-run -d 'Show the plan and every command; change nothing'
complete -c dlll_cias-escape -l no-poweroff -d 'Stay on at the end (the node is out of the cluster anyway)'
complete -c dlll_cias-escape -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dlll_cias-escape -s V -l version -d 'Print version'
