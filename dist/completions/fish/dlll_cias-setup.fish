complete -c dlll_cias-setup -l answers -d 'Answers file (YAML; keys are the flag names with \'_\' for \'-\'): runs without questions' -r -F
complete -c dlll_cias-setup -l secrets-file -d 'Passwords as YAML (router_admin_password, master_root_password, smtp_password) from a file of mode 0600, or \'-\' for stdin' -r -F
complete -c dlll_cias-setup -l wipe -d 'Format DEVICE although it holds a partition table or a file system (its content is destroyed); repeat per device. Without it only blank disks are formatted' -r
complete -c dlll_cias-setup -l master -d 'Where a running cluster\'s master answers (default: the master VIP 10.254.0.254)' -r
complete -c dlll_cias-setup -l priority -d 'keepalived priority of this node, 0..100 (0 = never master; default 50)' -r
complete -c dlll_cias-setup -l rack -d 'Rack name used in this node\'s host name (`pve.<rack>.<slot>.<R>-<N>.<domain>`)' -r
complete -c dlll_cias-setup -l slot -d 'Slot name used in this node\'s host name' -r
complete -c dlll_cias-setup -l nic -d 'Network interfaces bridged into vmbr0 (repeat; default: every NIC found)' -r
complete -c dlll_cias-setup -l wan-interface -d 'Interface that carries the external master IP (default vmbr0)' -r
complete -c dlll_cias-setup -l domain -d 'First node: DNS domain of the node host names' -r
complete -c dlll_cias-setup -l admin-email -d 'First node: where reports go (default: root\'s e-mail from the Proxmox install)' -r
complete -c dlll_cias-setup -l external-network -d 'First node: the external network, e.g. 192.168.56.0/24' -r
complete -c dlll_cias-setup -l external-gateway -d 'First node: the external gateway' -r
complete -c dlll_cias-setup -l master-ip -d 'First node: the master\'s external IP (a keepalived VIP)' -r
complete -c dlll_cias-setup -l router-proxmox-ip -d 'First node: the router\'s "Proxmox management" IP (also its web GUI)' -r
complete -c dlll_cias-setup -l router-nas-ip -d 'First node: the router\'s "NAS management" IP' -r
complete -c dlll_cias-setup -l router-vm-ip -d 'First node: the router\'s "VM management" IPs, index 0 first (repeat)' -r
complete -c dlll_cias-setup -l router-admin-user -d 'First node: the administrator account created on the router' -r
complete -c dlll_cias-setup -l router-archive -d 'First node: the router\'s vzdump archive (default: the newest /data/cias/vzdump-qemu-100-* archive)' -r -F
complete -c dlll_cias-setup -l smtp-host -d 'First node: SMTP relay for reports (default localhost)' -r
complete -c dlll_cias-setup -l smtp-port -d 'First node: SMTP port (default 25)' -r
complete -c dlll_cias-setup -l smtp-from -d 'First node: sender address of reports' -r
complete -c dlll_cias-setup -l uplink-target -d 'First node: the addresses the uplink check pings, any answer counts (repeat; default: the external gateway, 8.8.8.8 and 1.1.1.1)' -r
complete -c dlll_cias-setup -l qdevice -d 'The QDevice host (corosync-qnetd on the NAS or any small machine), set up by the node whose join makes the cluster two nodes (asked then at a terminal): without one, a two-node cluster has no automatic takeover (no majority survives a node\'s loss)' -r
complete -c dlll_cias-setup -l master-fingerprint -d 'Extension: the master\'s SSH host key fingerprint (`SHA256:...`, from `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the master). Without it the fingerprint is shown and must be confirmed at the terminal' -r
complete -c dlll_cias-setup -l dry-run -d 'Show the plan and every command and file this node would get; change nothing'
complete -c dlll_cias-setup -s y -l yes -d 'Proceed without confirming the plan (needed without a terminal, e.g. with --answers from automation)'
complete -c dlll_cias-setup -l loop-disks -d 'Test labs only: loop devices count as disks'
complete -c dlll_cias-setup -s v -l verbose -d 'Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead)'
complete -c dlll_cias-setup -s q -l quiet -d 'Log less: -q warnings and errors only, -qq errors only'
complete -c dlll_cias-setup -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dlll_cias-setup -s V -l version -d 'Print version'
