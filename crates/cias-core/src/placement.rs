//! Where VMs go when they must leave a node (escape, node removal, takeover): one pure rule
//! for the whole toolkit.
//!
//! Each guest goes to the candidate with the smallest share of its memory in use (counting
//! the guests this call has already placed there), among those it fits under the memory
//! limit; ties go to the node name. Bigger guests are placed first, so the big ones still
//! find room and the small ones fill the gaps. Callers choose the candidates (never the
//! master nor the leaving node): this module knows nothing of roles.
//!
//! Cost: O(G log G + (G + N) log N) for G guests and N candidates (a 1,270-node, 124,245-VM
//! fleet takes milliseconds: `cargo xtask bench placement`). The least-loaded node by share
//! is not always one with room (a small node at 10% may be too small for a 64 GiB guest), so
//! a node too full for the current guest is parked in a second heap, keyed by its free room,
//! and comes back once the guests (sorted by size) are small enough for it. A node is
//! parked again only after a guest was placed on it, so there are at most N + G parkings.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A node VMs may be placed on, with its memory as Proxmox reports it (bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub mem_used: u64,
    pub mem_max: u64,
}

/// A VM to place: its VMID and memory (bytes, `maxmem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guest {
    pub vmid: u32,
    pub mem: u64,
}

/// A candidate's planned load; orders by share in use, then by name rank.
#[derive(Debug, Clone, Copy)]
struct Load {
    used: u64,
    max: u64,
    /// Position in the name order, so ties are decided by name.
    rank: usize,
}

impl Ord for Load {
    fn cmp(&self, other: &Self) -> Ordering {
        // used/max against other.used/other.max without floats (max > 0, see `place`).
        (u128::from(self.used) * u128::from(other.max))
            .cmp(&(u128::from(other.used) * u128::from(self.max)))
            .then(self.rank.cmp(&other.rank))
    }
}

impl PartialOrd for Load {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Load {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Load {}

/// Where each guest goes: `Some(node)` or `None` when no candidate has room under the limit.
///
/// A guest fits a candidate when `used + guest.mem <= mem_max * limit_percent / 100`. The
/// result is in the order of `guests`. A candidate with `mem_max` 0 never gets anything.
pub fn place(candidates: &[Candidate], guests: &[Guest], limit_percent: u8) -> Vec<(u32, Option<String>)> {
    let mut nodes: Vec<&Candidate> = candidates.iter().filter(|c| c.mem_max > 0).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let cap = |max: u64| u64::try_from(u128::from(max) * u128::from(limit_percent) / 100).unwrap_or(u64::MAX);
    // Nodes already over the limit can take nothing, not even a guest of 0 bytes.
    let mut active: BinaryHeap<Reverse<Load>> = nodes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.mem_used <= cap(c.mem_max))
        .map(|(rank, c)| Reverse(Load { used: c.mem_used, max: c.mem_max, rank }))
        .collect();
    // Nodes with too little room for the current guest, most room first.
    let mut parked: BinaryHeap<(u64, Reverse<Load>)> = BinaryHeap::new();
    let room = |l: &Load| cap(l.max) - l.used;

    let mut order: Vec<usize> = (0..guests.len()).collect();
    order.sort_unstable_by_key(|&i| (Reverse(guests[i].mem), guests[i].vmid, i));
    let mut result: Vec<(u32, Option<String>)> = guests.iter().map(|g| (g.vmid, None)).collect();
    for i in order {
        let mem = guests[i].mem;
        while parked.peek().is_some_and(|(r, _)| *r >= mem) {
            let (_, load) = parked.pop().expect("peeked");
            active.push(load);
        }
        while let Some(Reverse(mut load)) = active.pop() {
            if room(&load) >= mem {
                load.used += mem;
                result[i].1 = Some(nodes[load.rank].name.clone());
                active.push(Reverse(load));
                break;
            }
            parked.push((room(&load), Reverse(load)));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn node(name: &str, used_gib: u64, max_gib: u64) -> Candidate {
        Candidate { name: name.into(), mem_used: used_gib * GIB, mem_max: max_gib * GIB }
    }

    fn guest(vmid: u32, gib: u64) -> Guest {
        Guest { vmid, mem: gib * GIB }
    }

    fn to(result: &[(u32, Option<String>)]) -> Vec<(u32, Option<&str>)> {
        result.iter().map(|(v, n)| (*v, n.as_deref())).collect()
    }

    #[test]
    fn vms_spread_over_nodes_by_ram_biggest_first_in_input_order() {
        // pve-a 4/16 GiB, pve-b 2/16. 8 GiB -> b (10/16); 4 -> a (8/16); 2 -> a (10/16);
        // 1 -> a (ties b at 10/16; a by name).
        let nodes = [node("pve-a", 4, 16), node("pve-b", 2, 16)];
        let guests = [guest(1101, 1), guest(1102, 8), guest(1103, 2), guest(1104, 4)];
        assert_eq!(
            to(&place(&nodes, &guests, 90)),
            vec![(1101, Some("pve-a")), (1102, Some("pve-b")), (1103, Some("pve-a")), (1104, Some("pve-a"))]
        );
    }

    #[test]
    fn the_limit_is_respected_and_a_guest_that_fits_nowhere_is_none() {
        // Under 50%: pve-a has 4 GiB of room, pve-b 6 GiB.
        let nodes = [node("pve-a", 4, 16), node("pve-b", 2, 16)];
        let guests = [guest(1101, 7), guest(1102, 6), guest(1103, 4)];
        assert_eq!(
            to(&place(&nodes, &guests, 50)),
            vec![(1101, None), (1102, Some("pve-b")), (1103, Some("pve-a"))]
        );
        // Exactly at the limit fits.
        assert_eq!(to(&place(&nodes[..1], &[guest(1, 4)], 50)), vec![(1, Some("pve-a"))]);
    }

    #[test]
    fn the_least_loaded_node_too_small_for_a_guest_gives_way_to_one_with_room() {
        // pve-small is emptier by share but has 7 GiB of room; the 20 GiB guest goes to pve-big,
        // then the small guests come back to pve-small.
        let nodes = [node("pve-big", 128, 256), node("pve-small", 1, 8)];
        let guests = [guest(1, 20), guest(2, 1), guest(3, 30)];
        assert_eq!(
            to(&place(&nodes, &guests, 100)),
            vec![(1, Some("pve-big")), (2, Some("pve-small")), (3, Some("pve-big"))]
        );
    }

    #[test]
    fn ties_go_to_the_node_name_whatever_the_input_order() {
        let guests = [guest(1101, 1)];
        for nodes in
            [[node("pve-b", 0, 16), node("pve-a", 0, 16)], [node("pve-a", 0, 16), node("pve-b", 0, 16)]]
        {
            assert_eq!(to(&place(&nodes, &guests, 90)), vec![(1101, Some("pve-a"))]);
        }
        // Equal shares at different sizes tie too.
        let nodes = [node("pve-b", 4, 16), node("pve-a", 8, 32)];
        assert_eq!(to(&place(&nodes, &guests, 90)), vec![(1101, Some("pve-a"))]);
    }

    #[test]
    fn no_candidates_or_no_memory_means_nowhere() {
        let guests = [guest(1101, 1), guest(1102, 0)];
        assert_eq!(to(&place(&[], &guests, 90)), vec![(1101, None), (1102, None)]);
        assert_eq!(to(&place(&[node("pve-a", 0, 0)], &guests, 90)), vec![(1101, None), (1102, None)]);
        // A node already over the limit takes nothing, not even a VM of unknown size.
        assert_eq!(to(&place(&[node("pve-a", 15, 16)], &guests, 90)), vec![(1101, None), (1102, None)]);
    }
}
