//! What `keeper run` does about its own memory, beside what each part keeps:
//! glibc's malloc arenas capped before the runtime's threads start
//! ([`limit_malloc_arenas`]), and once keeper has started, what only
//! start-up used given back ([`release_start_up_memory`]).
//!
//! Start-up (the config, migrations, the first reads, the router) runs code
//! that does not run again, and the kernel maps a binary's pages 64 kB
//! around each page first touched: at 1,000 checks, 15 of keeper's 27 MB
//! were its own binary's pages, of which about 2 MB run at steady state
//! (docs/benchmarks.md). Those pages are clean copies of the file; what
//! runs again is read back at its first touch.

/// malloc arenas `keeper run` allows (glibc's default is eight per core).
/// Every thread that allocates while another holds an arena gets one of its
/// own, and an arena keeps what was freed in it: each SQLite connection's
/// thread held on to its share of start-up's reads (rollups, uptime, the
/// latest samples). On a file of 200,000 samples with 1,000 checks every
/// 5 s, keeper's private memory 100 s after start was 22.3 MB with the
/// default and 18.2 MB with two, at the same CPU per check.
/// `MALLOC_ARENA_MAX`, when set, is glibc's to read and wins.
pub const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`] unless the environment
/// already says how many; called before the runtime starts its threads.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; glibc documents
        // M_ARENA_MAX as settable at any time, and no other thread runs yet.
        let set = unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) };
        if set != 1 {
            tracing::warn!("could not limit malloc arenas; memory may grow per thread");
        }
    }
}

/// Gives back what start-up alone used: the heap's free pages, and the
/// pages of keeper's own code and read-only data. Called once, when keeper
/// has started. Where the kernel refuses (`MADV_PAGEOUT` came with Linux
/// 5.4), keeper runs on with those pages and says so in its log.
pub fn release_start_up_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands the heap's free pages back to the
    // system; it takes glibc's locks like any allocation.
    unsafe {
        libc::malloc_trim(0);
    }
    #[cfg(target_os = "linux")]
    match page_out_own_code() {
        Ok(bytes) => tracing::debug!(kib = bytes / 1024, "start-up's code pages given back"),
        Err(e) => tracing::info!(error = %e, "start-up's code pages stay in memory"),
    }
}

/// Asks the kernel to take the pages of every read-only mapping of keeper's
/// binary out of memory; the bytes advised.
#[cfg(target_os = "linux")]
fn page_out_own_code() -> std::io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut bytes = 0;
    for range in read_only_mappings(&maps, &exe.to_string_lossy()) {
        let len = range.end - range.start;
        // SAFETY: the range is one whole read-only mapping of keeper's own
        // binary as the kernel lists it. MADV_PAGEOUT unmaps nothing and
        // changes no byte: it drops clean copies of the file's pages, which
        // the next touch reads back.
        let advised =
            unsafe { libc::madvise(range.start as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
        if advised != 0 {
            return Err(std::io::Error::last_os_error());
        }
        bytes += len;
    }
    if bytes == 0 {
        return Err(std::io::Error::other(format!(
            "no read-only mapping of {} in /proc/self/maps",
            exe.display()
        )));
    }
    Ok(bytes)
}

/// The address ranges that `maps` (the text of `/proc/PID/maps`) lists as
/// mapped from the file `path` without write permission.
#[cfg(any(target_os = "linux", test))]
fn read_only_mappings(maps: &str, path: &str) -> Vec<std::ops::Range<usize>> {
    maps.lines()
        .filter_map(|line| {
            // address perms offset dev inode, then the name after padding.
            let mut fields = line.splitn(6, ' ');
            let (start, end) = fields.next()?.split_once('-')?;
            let perms = fields.next()?;
            let name = fields.nth(3)?.trim_start();
            if name != path || perms.contains('w') {
                return None;
            }
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            Some(start..end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
5581a0000000-5581a0470000 r--p 00000000 fe:00 1234                       /usr/bin/keeper
5581a0470000-5581a1100000 r-xp 00470000 fe:00 1234                       /usr/bin/keeper
5581a1100000-5581a1262000 r--p 01100000 fe:00 1234                       /usr/bin/keeper
5581a1262000-5581a1270000 rw-p 01262000 fe:00 1234                       /usr/bin/keeper
5581a1270000-5581a1280000 rw-p 00000000 00:00 0 
5581a2000000-5581a2100000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000028000 r--p 00000000 fe:00 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000028000-7f000019d000 r-xp 00028000 fe:00 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
7f1000000000-7f1000001000 r--p 00000000 fe:00 7                          /usr/bin/keeper-old (deleted)
";

    #[test]
    fn the_binarys_read_only_mappings_are_found_and_nothing_else() {
        assert_eq!(
            read_only_mappings(MAPS, "/usr/bin/keeper"),
            vec![
                0x5581a0000000..0x5581a0470000,
                0x5581a0470000..0x5581a1100000,
                0x5581a1100000..0x5581a1262000,
            ]
        );
        // A binary replaced on disk while running is still its own mapping.
        assert_eq!(
            read_only_mappings(MAPS, "/usr/bin/keeper-old (deleted)"),
            vec![0x7f1000000000..0x7f1000001000]
        );
        assert!(read_only_mappings(MAPS, "/usr/bin/keep").is_empty());
        assert!(read_only_mappings("garbage\n\n", "/usr/bin/keeper").is_empty());
    }

    /// kB of this process's RSS mapped from files.
    #[cfg(target_os = "linux")]
    fn rss_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let line = status
            .lines()
            .find(|l| l.starts_with("RssFile:"))
            .expect("RssFile");
        line.split_whitespace()
            .nth(1)
            .expect("kB")
            .parse()
            .expect("number")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn paging_out_the_binary_gives_back_most_of_its_pages() {
        let before = rss_file_kib();
        let advised = page_out_own_code().expect("MADV_PAGEOUT (Linux 5.4 or later)");
        let after = rss_file_kib();
        assert!(advised > 1 << 20, "{advised} bytes advised");
        // Other tests run beside this one and touch code again: not all of
        // it goes, but most of what the test binary had mapped does.
        assert!(after < before / 2, "RssFile {before} kB -> {after} kB");
    }
}
