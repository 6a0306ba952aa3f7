//! Test runs side by side: `scripts/test.sh` gives each concurrent run a slot whose test
//! servers listen on every harness port shifted by `STRIDE × slot` (scripts/servers.sh,
//! AUTHPROBE_PORT_OFFSET). Checked here on the harness's own lists, so that a port added
//! later cannot land on another slot's, or on a bastion-only port that must stay closed.

use std::collections::BTreeSet;
use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The ports (passive ranges expanded) `defaults.env` gives the harness: those every
/// harness listens on, and the bastion's inner ones, which exist only in its namespace.
fn harness_ports() -> (BTreeSet<u32>, BTreeSet<u32>) {
    let (mut host, mut inner) = (BTreeSet::new(), BTreeSet::new());
    for line in read("scripts/harness/defaults.env").lines() {
        let Some((name, value)) = line.split_once('=') else { continue };
        if !(name.starts_with("AP_") && (name.ends_with("_PORT") || name.ends_with("_PASV"))) {
            continue;
        }
        let (low, high) = value.split_once(':').unwrap_or((value, value));
        let (low, high): (u32, u32) = (low.trim().parse().unwrap(), high.trim().parse().unwrap());
        let set = if name.starts_with("AP_INNER_") { &mut inner } else { &mut host };
        set.extend(low..=high);
    }
    (host, inner)
}

/// The slots and stride test.sh uses, read from the script itself.
fn slots_and_stride() -> (Vec<u32>, u32) {
    let script = read("scripts/test.sh");
    let slots = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("for candidate in ")?.strip_suffix("; do").map(str::to_string))
        .expect("test.sh's slot loop");
    let slots: Vec<u32> = slots.split_whitespace().map(|s| s.parse().unwrap()).collect();
    let stride = script
        .split("AUTHPROBE_PORT_OFFSET=$((slot * ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.trim().parse().ok())
        .expect("test.sh's port stride");
    (slots, stride)
}

#[test]
fn every_slot_has_ports_of_its_own() {
    let (host, inner) = harness_ports();
    let (slots, stride) = slots_and_stride();
    assert!(host.len() > 50 && !inner.is_empty() && slots.len() >= 2, "{host:?} {inner:?} {slots:?}");
    let mut taken: BTreeSet<u32> = inner.clone();
    for slot in &slots {
        let ports: BTreeSet<u32> = host.iter().map(|p| p + slot * stride).collect();
        let clash: Vec<&u32> = ports.intersection(&taken).collect();
        assert!(clash.is_empty(), "slot {slot} (ports +{}) meets other ports at {clash:?}", slot * stride);
        // Below Linux's ephemeral range, where a client's own port could hold one at start.
        assert!(ports.iter().all(|p| *p < 32768), "slot {slot} reaches the ephemeral ports");
        taken.extend(ports);
    }
}

#[test]
fn servers_sh_shifts_every_port_but_the_bastions_inner_ones() {
    let script = read("scripts/servers.sh");
    assert!(script.contains("AUTHPROBE_PORT_OFFSET"), "servers.sh reads no offset");
    assert!(script.contains("case $var in AP_INNER_*) continue ;; esac"), "inner ports must stay");
    // What it writes for the tests is the shifted value, not defaults.env's line.
    assert!(script.contains("echo \"$var=${!var}\""), "servers.env must hold the shifted ports");
}
