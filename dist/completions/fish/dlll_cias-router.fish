# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_dlll_cias_router_global_optspecs
    string join \n dry-run config= v/verbose q/quiet h/help V/version
end

function __fish_dlll_cias_router_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_dlll_cias_router_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_dlll_cias_router_using_subcommand
    set -l cmd (__fish_dlll_cias_router_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c dlll_cias-router -n "__fish_dlll_cias_router_needs_command" -l config -d 'The cluster settings' -r -F
complete -c dlll_cias-router -n "__fish_dlll_cias_router_needs_command" -l dry-run -d 'Show the router calls and file writes that would run; change nothing'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_needs_command" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_needs_command" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_needs_command" -s V -l version -d 'Print version'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_needs_command" -f -a "show" -d 'What the router has: its VM-management IPs and every port forward'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_needs_command" -f -a "add-ip" -d 'Add a VM-management IP as the next index X (VMIDs X*1000 + ... use it)'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_needs_command" -f -a "remove-ip" -d 'Remove the last VM-management IP (refused while a VM\'s VMID uses its index, and for index 0); its forwards go with it'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_needs_command" -f -a "forward" -d 'Set (or with --remove take away) the port forwards of a VM'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand show" -l config -d 'The cluster settings' -r -F
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand show" -l dry-run -d 'Show the router calls and file writes that would run; change nothing'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand show" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand show" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand show" -s h -l help -d 'Print help'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand add-ip" -l config -d 'The cluster settings' -r -F
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand add-ip" -l dry-run -d 'Show the router calls and file writes that would run; change nothing'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand add-ip" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand add-ip" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand add-ip" -s h -l help -d 'Print help'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand remove-ip" -l config -d 'The cluster settings' -r -F
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand remove-ip" -l dry-run -d 'Show the router calls and file writes that would run; change nothing'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand remove-ip" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand remove-ip" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand remove-ip" -s h -l help -d 'Print help'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand forward" -l service -d 'Services to forward: http, https, ssh, rdp (comma-separated or repeated) [default: all four]' -r
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand forward" -l port -d 'A custom forward: the external port\'s last two digits and the VM\'s port (e.g. 10:8080)' -r
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand forward" -l config -d 'The cluster settings' -r -F
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand forward" -l remove -d 'Remove these forwards instead'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand forward" -l dry-run -d 'Show the router calls and file writes that would run; change nothing'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand forward" -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand forward" -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand forward" -s h -l help -d 'Print help'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand help; and not __fish_seen_subcommand_from show add-ip remove-ip forward help" -f -a "show" -d 'What the router has: its VM-management IPs and every port forward'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand help; and not __fish_seen_subcommand_from show add-ip remove-ip forward help" -f -a "add-ip" -d 'Add a VM-management IP as the next index X (VMIDs X*1000 + ... use it)'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand help; and not __fish_seen_subcommand_from show add-ip remove-ip forward help" -f -a "remove-ip" -d 'Remove the last VM-management IP (refused while a VM\'s VMID uses its index, and for index 0); its forwards go with it'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand help; and not __fish_seen_subcommand_from show add-ip remove-ip forward help" -f -a "forward" -d 'Set (or with --remove take away) the port forwards of a VM'
complete -c dlll_cias-router -n "__fish_dlll_cias_router_using_subcommand help; and not __fish_seen_subcommand_from show add-ip remove-ip forward help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
