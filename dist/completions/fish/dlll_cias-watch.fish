# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_dlll_cias_watch_global_optspecs
    string join \n v/verbose q/quiet h/help V/version
end

function __fish_dlll_cias_watch_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_dlll_cias_watch_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_dlll_cias_watch_using_subcommand
    set -l cmd (__fish_dlll_cias_watch_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_needs_command" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_needs_command" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_needs_command" -s h -l help -d 'Print help'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_needs_command" -s V -l version -d 'Print version'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_needs_command" -f -a "vmids" -d 'On the master: write the VMID map /mnt/mfs/cias/pve_master_vmid.conf, and give every VM its anti-spoofing firewall (every minute)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_needs_command" -f -a "master" -d 'On a never-master node: mail the administrator when no master answers on two looks (every minute)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_needs_command" -f -a "uplink" -d 'On every node: ping the uplink targets; when none answers, power this node off later (every 3 minutes)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_needs_command" -f -a "nodes" -d 'On the quorate master: check every node and remove the ones silent too long (every 5 minutes)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_needs_command" -f -a "peers" -d 'On every node: bring keepalived\'s unicast peers and the node filter (nftables table inet dlll_cias, /etc/dlll-cias/firewall.nft) in line with the address registry (every minute)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand vmids" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand vmids" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand vmids" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand master" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand master" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand master" -s h -l help -d 'Print help'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand uplink" -l cancel -d 'Cancel the scheduled power-off; none is scheduled again until the uplink has come back once'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand uplink" -l probe -d 'Only ping the targets: exit 0 when one answers, 1 when none does; nothing changes'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand uplink" -l power-off -d 'Run by the power-off timer at the deadline (see above)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand uplink" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand uplink" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand uplink" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand nodes" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand nodes" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand nodes" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand peers" -l all -d 'Also on every other online member, over SSH (a node joining or leaving asks this)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand peers" -l unicast -d 'Convert a keepalived that still advertises by multicast (a node installed before unicast peers) to unicast. Its election restarts: the master is demoted for a few seconds and mfsmaster moves. Run it on every node (or once with --all) at a quiet moment; nodes that differ cannot hear each other meanwhile'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand peers" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand peers" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand peers" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand help; and not __fish_seen_subcommand_from vmids master uplink nodes peers help" -f -a "vmids" -d 'On the master: write the VMID map /mnt/mfs/cias/pve_master_vmid.conf, and give every VM its anti-spoofing firewall (every minute)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand help; and not __fish_seen_subcommand_from vmids master uplink nodes peers help" -f -a "master" -d 'On a never-master node: mail the administrator when no master answers on two looks (every minute)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand help; and not __fish_seen_subcommand_from vmids master uplink nodes peers help" -f -a "uplink" -d 'On every node: ping the uplink targets; when none answers, power this node off later (every 3 minutes)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand help; and not __fish_seen_subcommand_from vmids master uplink nodes peers help" -f -a "nodes" -d 'On the quorate master: check every node and remove the ones silent too long (every 5 minutes)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand help; and not __fish_seen_subcommand_from vmids master uplink nodes peers help" -f -a "peers" -d 'On every node: bring keepalived\'s unicast peers and the node filter (nftables table inet dlll_cias, /etc/dlll-cias/firewall.nft) in line with the address registry (every minute)'
complete -c dlll_cias-watch -n "__fish_dlll_cias_watch_using_subcommand help; and not __fish_seen_subcommand_from vmids master uplink nodes peers help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
