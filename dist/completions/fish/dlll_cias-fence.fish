# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_dlll_cias_fence_global_optspecs
    string join \n v/verbose q/quiet h/help V/version
end

function __fish_dlll_cias_fence_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_dlll_cias_fence_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_dlll_cias_fence_using_subcommand
    set -l cmd (__fish_dlll_cias_fence_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_needs_command" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_needs_command" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_needs_command" -s h -l help -d 'Print help'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_needs_command" -s V -l version -d 'Print version'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_needs_command" -f -a "check" -d 'Exit 0 when the reconcile loop says this node may hold the master role, 1 when not (keepalived\'s check; the reason is in the loop\'s log)'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_needs_command" -f -a "demoted" -d 'This node is not the master: stop its mfsmaster if one runs and set a former master\'s files aside (keepalived\'s notify_backup, notify_fault and notify_stop)'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_needs_command" -f -a "run" -d 'The reconcile loop (the dlll-cias-fence service): every second, repair what breaks this node\'s invariants and fence it when it leaves the quorum'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_using_subcommand check" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_using_subcommand check" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_using_subcommand check" -s h -l help -d 'Print help'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_using_subcommand demoted" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_using_subcommand demoted" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_using_subcommand demoted" -s h -l help -d 'Print help'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_using_subcommand run" -l config -d 'Cluster settings (fence delay, VIPs)' -r -F
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_using_subcommand run" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_using_subcommand run" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_using_subcommand run" -s h -l help -d 'Print help'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_using_subcommand help; and not __fish_seen_subcommand_from check demoted run help" -f -a "check" -d 'Exit 0 when the reconcile loop says this node may hold the master role, 1 when not (keepalived\'s check; the reason is in the loop\'s log)'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_using_subcommand help; and not __fish_seen_subcommand_from check demoted run help" -f -a "demoted" -d 'This node is not the master: stop its mfsmaster if one runs and set a former master\'s files aside (keepalived\'s notify_backup, notify_fault and notify_stop)'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_using_subcommand help; and not __fish_seen_subcommand_from check demoted run help" -f -a "run" -d 'The reconcile loop (the dlll-cias-fence service): every second, repair what breaks this node\'s invariants and fence it when it leaves the quorum'
complete -c dlll_cias-fence -n "__fish_dlll_cias_fence_using_subcommand help; and not __fish_seen_subcommand_from check demoted run help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
