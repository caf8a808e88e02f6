//! The process's allocator, and what it says it holds.
//!
//! jemalloc instead of glibc's malloc. The service makes small long-lived
//! allocations per device (window blocks, broker state) all day between
//! short-lived ones per message, on several threads, and with glibc much of
//! what was freed stayed resident. In day-long runs a device cost 16.3 KiB of
//! RSS over the registered service with jemalloc, 19.6 KiB with glibc limited
//! to two arenas and 31.5 KiB with glibc as it comes (`benches/RESULTS.md`,
//! "A day through the service"). mimalloc, tried too, held about 40 MB more
//! than glibc at the same point.
//!
//! Its background threads are on (the `background_threads` feature): jemalloc
//! returns freed pages to the OS after a 10 s decay, but without them only
//! when some thread next allocates, so an idle service kept what its last
//! burst freed. The idle service of 2,500 subjects, which rebuilds its world
//! each minute, measured 76 to 103 MB of RSS from one start to the next with
//! jemalloc's allocated bytes the same (126 MB) in each; with the background
//! threads it settled at 60.6 to 63 MB in both starts (RESULTS, "Pages the
//! allocator kept").
//!
//! It is declared here rather than in `main.rs` so that the tests that start
//! the service in-process run on the allocator the binary does, and the
//! statistics below describe the allocator actually in use.
//!
//! RSS alone cannot tell what the service allocated from what an allocator
//! keeps for reuse, or from memory outside it (thread stacks, SQLite, which
//! calls the C library's `malloc`): [`stats`] separates them.

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// One figure of the allocator, in bytes, as exported in
/// `geoward_allocator_bytes{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figure {
    /// `allocated`, `active`, `resident`, `mapped`, `retained` or `metadata`
    /// (jemalloc's `stats.*` of the same names).
    pub kind: &'static str,
    pub bytes: u64,
}

/// jemalloc's statistics, refreshed at the call: bytes the program holds
/// (`allocated`), in pages it uses (`active`), physically resident in the
/// allocator's mappings (`resident`), mapped (`mapped`), unmapped back to the
/// OS but kept as address space (`retained`) and the allocator's own
/// (`metadata`). Empty when the service is built without jemalloc.
pub fn stats() -> Vec<Figure> {
    #[cfg(feature = "jemalloc")]
    {
        jemalloc_stats().unwrap_or_default()
    }
    #[cfg(not(feature = "jemalloc"))]
    {
        Vec::new()
    }
}

#[cfg(feature = "jemalloc")]
fn jemalloc_stats() -> Option<Vec<Figure>> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // jemalloc caches its statistics; advancing the epoch refreshes them.
    epoch::advance().ok()?;
    let figure = |kind, bytes: usize| Figure {
        kind,
        bytes: bytes as u64,
    };
    Some(vec![
        figure("allocated", stats::allocated::read().ok()?),
        figure("active", stats::active::read().ok()?),
        figure("resident", stats::resident::read().ok()?),
        figure("mapped", stats::mapped::read().ok()?),
        figure("retained", stats::retained::read().ok()?),
        figure("metadata", stats::metadata::read().ok()?),
    ])
}

#[cfg(all(test, feature = "jemalloc"))]
mod tests {
    use super::*;

    fn get(kind: &str) -> u64 {
        stats()
            .into_iter()
            .find(|f| f.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} figure"))
            .bytes
    }

    #[test]
    fn background_threads_return_freed_pages() {
        assert_eq!(tikv_jemalloc_ctl::background_thread::read(), Ok(true));
    }

    #[test]
    fn allocated_follows_what_the_program_holds() {
        let before = get("allocated");
        let held = std::hint::black_box(vec![1u8; 64 << 20]);
        let during = get("allocated");
        assert!(
            during >= before + (64 << 20),
            "allocated {before} -> {during} while holding 64 MiB"
        );
        assert!(
            get("active") >= during,
            "active pages hold what is allocated"
        );
        drop(held);
        assert!(get("allocated") < during, "freeing 64 MiB lowers allocated");
    }
}
