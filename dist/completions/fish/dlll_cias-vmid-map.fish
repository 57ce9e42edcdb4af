complete -c dlll_cias-vmid-map -l ip -d 'Describe the VM with this internal address (e.g. 10.10.5.1)' -r
complete -c dlll_cias-vmid-map -l port -d 'Describe the VM an external port forwards to (use with --index)' -r
complete -c dlll_cias-vmid-map -l index -d 'The VM-management IP index X the port belongs to (0..250)' -r
complete -c dlll_cias-vmid-map -l config -d 'Cluster settings, for external IPs [default: /data/cias/cias.yaml, when present]' -r -F
complete -c dlll_cias-vmid-map -l list -d 'Print every valid VMID with its internal address'
complete -c dlll_cias-vmid-map -l json -d 'Print JSON instead of text (one object; an array with --list)'
complete -c dlll_cias-vmid-map -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dlll_cias-vmid-map -s V -l version -d 'Print version'
