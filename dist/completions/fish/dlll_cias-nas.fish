# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_dlll_cias_nas_global_optspecs
    string join \n dry-run config= v/verbose q/quiet h/help V/version
end

function __fish_dlll_cias_nas_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_dlll_cias_nas_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_dlll_cias_nas_using_subcommand
    set -l cmd (__fish_dlll_cias_nas_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_needs_command" -l config -d 'The cluster settings' -r -F
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_needs_command" -l dry-run -d 'Show what would be run; change nothing'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_needs_command" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_needs_command" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_needs_command" -s V -l version -d 'Print version'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_needs_command" -f -a "add" -d 'Register the NAS at IP: registry, Proxmox storage, optionally the QDevice'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_needs_command" -f -a "remove" -d 'Take the NAS away: its storage, the QDevice if it is on it; its registry entry stays (retired: the address and host name are never given out again)'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_needs_command" -f -a "list" -d 'The NASes of the registry and their storages as this node sees them'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand add" -l rack -d 'Its rack, for the host name' -r
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand add" -l slot -d 'Its slot, for the host name' -r
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand add" -l export -d 'The export to use [default: the one whose last path part is the NAS\'s host name]' -r
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand add" -l content -d 'What the storage holds (Proxmox content types)' -r
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand add" -l config -d 'The cluster settings' -r -F
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand add" -l qdevice -d 'Also make the NAS the cluster\'s QDevice (pvecm qdevice setup; two-node clusters)'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand add" -l dry-run -d 'Show what would be run; change nothing'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand add" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand add" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand add" -s h -l help -d 'Print help'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand remove" -l config -d 'The cluster settings' -r -F
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand remove" -l dry-run -d 'Show what would be run; change nothing'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand remove" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand remove" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand remove" -s h -l help -d 'Print help'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand list" -l config -d 'The cluster settings' -r -F
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand list" -l dry-run -d 'Show what would be run; change nothing'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand list" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand list" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand list" -s h -l help -d 'Print help'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand help; and not __fish_seen_subcommand_from add remove list help" -f -a "add" -d 'Register the NAS at IP: registry, Proxmox storage, optionally the QDevice'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand help; and not __fish_seen_subcommand_from add remove list help" -f -a "remove" -d 'Take the NAS away: its storage, the QDevice if it is on it; its registry entry stays (retired: the address and host name are never given out again)'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand help; and not __fish_seen_subcommand_from add remove list help" -f -a "list" -d 'The NASes of the registry and their storages as this node sees them'
complete -c dlll_cias-nas -n "__fish_dlll_cias_nas_using_subcommand help; and not __fish_seen_subcommand_from add remove list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
