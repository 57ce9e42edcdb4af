//! The dlll-cias core library: everything the `dlll_cias-*` binaries share.
//!
//! - [`netplan`]: the address plan (VMIDs, VM addresses, port forwards, node addresses,
//!   hostnames, the registry that never reuses an address). Pure functions.
//! - [`settings`]: the cluster settings file and the separate secrets file, validated.
//! - [`disks`]: which disks are formatted for MooseFS and which are refused, and why.
//! - [`host`]: the only place that starts processes, locally, over SSH or as a dry run.
//! - [`journal`]: the finished-steps journal and the run lock that make scenarios resumable.
//! - [`templates`]: keepalived, MooseFS and cron files rendered from `templates/`.
//! - [`vrrp`]: the installer priority and how it becomes keepalived's.
//! - [`proxmox`]: argv builders and pure parsers for pvecm, pvesh, qm and task output.
//! - [`notify`]: mail to the administrator.
//! - [`paths`]: where things live on a node.
//!
//! This crate never prints and never exits: it returns typed errors and lets the binaries
//! decide how to tell the administrator.

pub mod disks;
pub mod host;
pub mod journal;
pub mod netplan;
pub mod notify;
pub mod paths;
pub mod proxmox;
pub mod settings;
pub mod templates;
pub mod vrrp;
