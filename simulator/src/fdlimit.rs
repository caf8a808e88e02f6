//! Open-file limit: every connection costs file descriptors (one direct,
//! three through the source-address relay, which also keeps a listener per
//! device), so a run with tens of thousands of devices needs the soft limit
//! raised towards the hard one before it starts.

/// File descriptors a run of `devices` connections needs (with a margin for
/// the runtime, the feed and report files).
pub fn needed(devices: usize, relayed: bool) -> u64 {
    let per = if relayed { 4 } else { 1 };
    devices as u64 * per + 64
}

/// Raises the soft limit to `want` (at most the hard limit) and returns the
/// resulting soft limit, `None` when unlimited or unknown.
#[cfg(unix)]
pub fn raise(want: u64) -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let current = lim.current?;
    if current >= want {
        return Some(current);
    }
    let target = lim.maximum.map_or(want, |max| want.min(max));
    let ok = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: lim.maximum,
        },
    )
    .is_ok();
    Some(if ok { target } else { current })
}

/// Without rlimits there is nothing to raise.
#[cfg(not(unix))]
pub fn raise(_want: u64) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_connections_need_more_descriptors() {
        assert_eq!(needed(10_000, false), 10_064);
        assert_eq!(needed(10_000, true), 40_064);
    }

    #[test]
    fn raising_to_a_small_value_keeps_the_current_limit() {
        let now = raise(0);
        if let Some(n) = now {
            assert!(n > 0);
            assert_eq!(raise(n), Some(n));
        }
    }
}
