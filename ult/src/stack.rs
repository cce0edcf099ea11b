//! Guard-paged ULT stacks and the per-thread stack pool.
//!
//! A [`UltStack`] is one anonymous read-write `mmap` reservation, `MAP_NORESERVE`, so pages
//! are committed only when first touched. Its lowest page is the guard page that turns an
//! overflow into a fault the overflow handler recognises. The guard is made one of two ways
//! ([`GuardKind`], decided once per process):
//! - **markers** (Linux 6.13 and later): `madvise(MADV_GUARD_INSTALL)` writes guard markers
//!   into the page table. The page faults like `PROT_NONE`, but the mapping keeps one
//!   protection throughout, so it needs no memory mapping of its own, and stacks the kernel
//!   places side by side merge into one mapping: 33,765 parked ULTs added 7 lines to
//!   `/proc/self/maps` on the development machine (`cargo test -p ult --test
//!   map_limit_is_an_error`). The number of live ULTs is then bounded by memory, not by
//!   `vm.max_map_count`.
//! - **protected** (older kernels, or `ULT_GUARD_PAGES=mprotect` in the environment): the
//!   guard page is `mprotect`ed to `PROT_NONE`, which splits it off as a mapping of its own.
//!   Each stack then holds two mappings and cannot merge with its neighbours, so Linux's
//!   default `vm.max_map_count` (65530) allows about 32,000 live ULTs.
//!
//! Either way the mappings that stacks add are budgeted ([`MAPPING_RESERVE`] stays free for
//! the heap, thread stacks and libraries, which would abort the process if they ran out):
//! the budget is the limit minus the reserve minus the mappings counted in `/proc/self/maps`
//! when it was last measured, and each new or unmapped stack spends what it may add (two or
//! one). When it runs out it is measured again, and a stack that does not fit makes
//! `Builder::spawn` fail with an error that names the limit.
//!
//! Mapping a fresh stack costs two system calls plus a page fault per touched page, and
//! unmapping it a third: 8.9-11.9 µs with markers against 10.3-11.1 µs with `mprotect` on
//! the development machine, for map, first touch and unmap of a 64 KiB stack (medians of
//! five interleaved pairs of `taskset -c 1 cargo run --release -p ult --example freshstack`,
//! without and with `ULT_GUARD_PAGES=mprotect`; markers faster in four). So finished ULTs
//! hand their stack back to a pool owned by the
//! kernel thread they finished on, and the next spawn on that thread reuses it warm. Pools are
//! thread-local: only the owning thread pushes or pops, no locking. Because a ULT may be
//! spawned on one kernel thread and finish on another (stealing), stacks drift between
//! threads; like a malloc's thread caches, a thread-local pool that grows past
//! [`LOCAL_POOL_MAX`] stacks moves a batch to a global pool (one lock per batch), and an
//! empty thread-local pool refills from it in a batch. The global pool keeps at most
//! [`POOL_MAX_BYTES`] of address space; the rest is unmapped.
//!
//! RSS stays bounded: a stack that once went deep would keep its touched pages forever.
//! When a stack comes back to the pool, a few words of the page just below the warm top
//! [`WARM_BYTES`] are read: a ULT that stayed shallow never wrote there, so they read as zero
//! (the first read maps the shared zero page once per stack; later reads are plain loads),
//! while one that went deeper left frames there. Only then is everything below the warm top
//! released with `madvise(MADV_DONTNEED)` (which also zeroes the probe words again, and
//! leaves guard markers in place). A deep
//! ULT that happened to leave exactly those words zero is caught by a full trim every
//! [`TRIM_EVERY`] reuses. A stack that stays with an idle worker coroutine between ULTs (see
//! `raw::workers`) is probed only every [`PROBE_EVERY`] uses, since the probe's cache lines
//! were a measurable part of a pooled spawn+join; a deep ULT's pages then outlive it by at
//! most that many uses of its worker. One `madvise` costs more than a whole pooled spawn+join, which is
//! why it is not done on every return.
//! Invariants: a stack in the pool is not in use by any coroutine; `base()` is 16-byte
//! aligned; the guard page faults on any access while the stack exists.

use std::cell::RefCell;
use std::io;
use std::ptr;
use std::sync::atomic::{AtomicIsize, AtomicU8, AtomicUsize, Ordering};

/// Default usable size of a ULT stack: 256 KiB of address space, of which only the touched
/// pages cost memory (a ULT that stays shallow uses one or two 4 KiB pages).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Smallest usable stack size accepted by [`crate::Builder::stack_size`].
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// Address space the global pool may hold before further returned stacks are unmapped.
pub const POOL_MAX_BYTES: usize = 256 * 1024 * 1024;

/// Stacks a thread-local pool holds before it moves half of them to the global pool.
pub const LOCAL_POOL_MAX: usize = 64;

/// The top of a stack that is never trimmed: the pages a shallow ULT touches.
pub const WARM_BYTES: usize = 16 * 1024;

/// A pooled stack is trimmed every this many returns to the pool.
pub const TRIM_EVERY: u32 = 1024;

/// An idle worker coroutine's stack is probed for depth every this many uses (a divisor of
/// [`TRIM_EVERY`]).
pub const PROBE_EVERY: u32 = 8;

#[inline]
pub(crate) fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if page > 0 { page as usize } else { 4096 };
    PAGE.store(page, Ordering::Relaxed);
    page
}

/// One guard-paged stack. Dropping it unmaps it.
pub struct UltStack {
    /// Lowest address of the mapping (the guard page starts here).
    low: usize,
    /// End of the guard page: the lowest usable address (corosensei's stack limit).
    limit: usize,
    /// End of the mapping: the stack's base (it grows down from here).
    top: usize,
    /// Returns to a pool since the last trim.
    uses_since_trim: u32,
}

impl UltStack {
    /// Maps a new stack with `size` usable bytes (rounded up to whole pages) above a guard
    /// page. Fails with an error that names the limit that was hit.
    pub fn new(size: usize) -> io::Result<UltStack> {
        // Before the first guard page exists, so that no overflow can go unreported: the
        // handler recognises guard pages of live stacks (once per process; a check after).
        crate::overflow::install_handler();
        let page = page_size();
        let usable = usable_for(size);
        let len = usable + page;
        let kind = guard_kind();
        let mappings = kind.mappings_per_stack() as isize;
        spend_mappings(mappings).map_err(|()| {
            mapping_error(io::Error::from_raw_os_error(libc::ENOMEM), usable, true)
        })?;
        let low = map_read_write(len).map_err(|err| {
            let _ = spend_mappings(-mappings); // nothing was mapped
            mapping_error(err, usable, false)
        })?;
        LIVE_STACKS.fetch_add(1, Ordering::Relaxed);
        let stack = UltStack {
            low,
            limit: low + page,
            top: low + len,
            uses_since_trim: 0,
        };
        if let Err(err) = install_guard(kind, stack.low, page) {
            // `stack` is dropped here and unmaps the reservation.
            return Err(mapping_error(err, usable, false));
        }
        Ok(stack)
    }

    /// Usable bytes (without the guard page).
    #[inline]
    pub fn usable_size(&self) -> usize {
        self.top - self.limit
    }

    /// The guard page as `[low, high)`.
    #[inline]
    pub fn guard_range(&self) -> (usize, usize) {
        (self.low, self.limit)
    }

    /// Counts one more use and trims the stack if its last user went deep (or every
    /// [`TRIM_EVERY`] uses). Call only while nothing runs below the warm top (a ULT's stack
    /// back in a pool; a worker coroutine suspended between ULTs).
    #[inline]
    pub(crate) fn note_reuse(&mut self) {
        self.note_reuse_probing_every(1);
    }

    /// [`UltStack::note_reuse`] that probes for depth only every [`PROBE_EVERY`] uses, for
    /// a stack that stays with a worker coroutine (its probe words cost a handful of cache
    /// lines per spawn otherwise). A deep ULT's pages then outlive it by at most that many
    /// uses of the same worker; a worker that leaves the idle list is probed in full by the
    /// stack pool.
    #[inline]
    pub(crate) fn note_reuse_sampled(&mut self) {
        self.note_reuse_probing_every(PROBE_EVERY);
    }

    /// Counts a use; every `every` uses (a divisor of [`TRIM_EVERY`]), trims if due or deep.
    #[inline(always)]
    fn note_reuse_probing_every(&mut self, every: u32) {
        self.uses_since_trim += 1;
        if self.uses_since_trim.is_multiple_of(every)
            && (self.uses_since_trim >= TRIM_EVERY || self.went_deep())
        {
            self.trim();
        }
    }

    /// A non-owning view of the stack for corosensei (see [`StackRef`]).
    #[inline]
    pub(crate) fn view(&self) -> StackRef {
        StackRef {
            limit: self.limit,
            top: self.top,
        }
    }

    /// Bytes of address space, guard page included.
    #[inline]
    pub(crate) fn mapped_len(&self) -> usize {
        self.top - self.low
    }

    /// Whether the ULT that used this stack went below the warm top (see the module header).
    #[inline]
    fn went_deep(&self) -> bool {
        let page = self.limit - self.low;
        if self.usable_size() <= WARM_BYTES {
            return false;
        }
        let probe_page = self.top - WARM_BYTES - page;
        (0..8).any(|i| {
            let addr = probe_page + i * (page / 8);
            // SAFETY: inside the read-write part of the mapping, which this value owns; no
            // coroutine runs on it. Reading an untouched page maps the zero page.
            unsafe { std::ptr::read_volatile(addr as *const usize) != 0 }
        })
    }

    /// Releases the committed pages below the warm top back to the kernel.
    pub(crate) fn trim(&mut self) {
        let keep_from = self.top - WARM_BYTES.min(self.usable_size());
        let start = self.limit;
        if keep_from > start {
            // SAFETY: the range is inside our read-write mapping and no coroutine is running on
            // this stack (it is being returned to the pool); MADV_DONTNEED only zeroes pages.
            unsafe {
                libc::madvise(
                    start as *mut libc::c_void,
                    keep_from - start,
                    libc::MADV_DONTNEED,
                );
            }
        }
        self.uses_since_trim = 0;
    }
}

impl Drop for UltStack {
    fn drop(&mut self) {
        // Unmapping a stack from the middle of a merged mapping splits it in two.
        let _ = spend_mappings(guard_kind().mappings_per_unmap());
        // SAFETY: `low..low+len` is exactly the mapping this value owns, and no coroutine runs
        // on it any more (the owner gave it up).
        unsafe {
            libc::munmap(self.low as *mut libc::c_void, self.mapped_len());
        }
        LIVE_STACKS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How the guard pages of this process's ULT stacks are made (see the module header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardKind {
    /// Guard markers in the page table (`madvise(MADV_GUARD_INSTALL)`, Linux 6.13 and
    /// later): no mapping of their own, and neighbouring stacks share one mapping.
    Marker,
    /// A `PROT_NONE` page (`mprotect`): two mappings per stack.
    Protected,
}

impl GuardKind {
    /// The most mappings one more stack adds to the process.
    pub fn mappings_per_stack(self) -> usize {
        match self {
            GuardKind::Marker => 1,
            GuardKind::Protected => 2,
        }
    }

    /// What unmapping a stack may add: a hole in a merged mapping splits it (markers); a
    /// stack of its own only frees its two (protected), which the budget gets back.
    fn mappings_per_unmap(self) -> isize {
        match self {
            GuardKind::Marker => 1,
            GuardKind::Protected => -2,
        }
    }
}

/// `MADV_GUARD_INSTALL` of Linux 6.13 (not yet in the `libc` crate).
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// 0 while undecided, else 1 + the `GuardKind` as `u8`.
static GUARD_KIND: AtomicU8 = AtomicU8::new(0);

/// How this process makes guard pages: markers where the kernel has them, unless the
/// environment asks for `ULT_GUARD_PAGES=mprotect` (read once, when the first stack is made).
pub fn guard_kind() -> GuardKind {
    match GUARD_KIND.load(Ordering::Relaxed) {
        1 => GuardKind::Marker,
        2 => GuardKind::Protected,
        _ => {
            let forced = std::env::var_os("ULT_GUARD_PAGES").is_some_and(|v| v == "mprotect");
            let kind = if forced || !kernel_has_guard_markers() {
                GuardKind::Protected
            } else {
                GuardKind::Marker
            };
            GUARD_KIND.store(1 + kind as u8, Ordering::Relaxed);
            kind
        }
    }
}

/// A fresh anonymous read-write `MAP_NORESERVE` mapping of `len` bytes, at an address of the
/// kernel's choosing; the caller owns it (and unmaps it).
fn map_read_write(len: usize) -> io::Result<usize> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p as usize)
    }
}

/// Whether `MADV_GUARD_INSTALL` works here: tried once on a scratch page.
fn kernel_has_guard_markers() -> bool {
    let page = page_size();
    let Ok(p) = map_read_write(page) else {
        return false;
    };
    // SAFETY: `p` is the one-page mapping just made, used only here and unmapped below.
    unsafe {
        let ok = libc::madvise(p as *mut libc::c_void, page, MADV_GUARD_INSTALL) == 0;
        libc::munmap(p as *mut libc::c_void, page);
        ok
    }
}

/// Makes `[low, low + len)`, the lowest page of a fresh stack mapping, its guard page.
fn install_guard(kind: GuardKind, low: usize, len: usize) -> io::Result<()> {
    // SAFETY: the range is the lowest page of a mapping the caller just created and owns; no
    // coroutine runs on it yet.
    let rc = unsafe {
        match kind {
            GuardKind::Marker => libc::madvise(low as *mut libc::c_void, len, MADV_GUARD_INSTALL),
            GuardKind::Protected => libc::mprotect(low as *mut libc::c_void, len, libc::PROT_NONE),
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Mappings ULT stacks may still add before `/proc/self/maps` is counted again.
static MAPPING_BUDGET: AtomicIsize = AtomicIsize::new(0);

/// Takes `n` mappings from the budget (gives them back if `n` is negative), measuring the
/// process's mappings again when the budget runs out; `Err` if even the measured count
/// leaves no room for `n` more above [`MAPPING_RESERVE`]. Always `Ok` where
/// `vm.max_map_count` cannot be read.
fn spend_mappings(n: isize) -> Result<(), ()> {
    if MAPPING_BUDGET.fetch_sub(n, Ordering::Relaxed) >= n || n <= 0 {
        return Ok(());
    }
    remeasure_budget(n)
}

#[cold]
fn remeasure_budget(n: isize) -> Result<(), ()> {
    // One measurement at a time: the others wait for its result rather than read the maps too.
    static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let (Some(limit), Some(in_use)) = (cached_max_map_count(), count_mappings()) else {
        MAPPING_BUDGET.store(isize::MAX / 2, Ordering::Relaxed);
        return Ok(());
    };
    let room = limit as isize - MAPPING_RESERVE as isize - in_use as isize;
    if room < n {
        // Nothing spent: the next attempt measures again.
        MAPPING_BUDGET.store(0, Ordering::Relaxed);
        return Err(());
    }
    MAPPING_BUDGET.store(room - n, Ordering::Relaxed);
    Ok(())
}

/// Mappings left to the rest of the process (heap, threads, libraries) when ULT stacks
/// approach `vm.max_map_count`.
pub const MAPPING_RESERVE: usize = 2048;

static LIVE_STACKS: AtomicUsize = AtomicUsize::new(0);

/// Guarded stacks currently mapped by this process (in use or pooled).
pub fn live_stacks() -> usize {
    LIVE_STACKS.load(Ordering::Relaxed)
}

fn cached_max_map_count() -> Option<usize> {
    static LIMIT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(read_max_map_count)
}

// SAFETY: the mapping has a guard page at its low end and at least MIN_STACK_SIZE (> 4096)
// usable bytes; base and limit are page-aligned, hence 16-byte aligned.
unsafe impl corosensei::stack::Stack for UltStack {
    #[inline]
    fn base(&self) -> corosensei::stack::StackPointer {
        self.view().base()
    }

    #[inline]
    fn limit(&self) -> corosensei::stack::StackPointer {
        self.view().limit()
    }
}

/// The addresses of an [`UltStack`] that a worker coroutine runs on, without owning it: the
/// worker keeps the `UltStack` beside its coroutine and drops the coroutine first, so the
/// mapping outlives every use of this view.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StackRef {
    limit: usize,
    top: usize,
}

// SAFETY: made only by `UltStack::view` from a live stack (guard page below `limit`, at least
// MIN_STACK_SIZE usable, page-aligned ends); its owner keeps the mapping alive for as long as
// the coroutine that uses this view exists (see the type's comment).
unsafe impl corosensei::stack::Stack for StackRef {
    #[inline]
    fn base(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.top).expect("mapping is not at 0")
    }

    #[inline]
    fn limit(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.limit).expect("mapping is not at 0")
    }
}

fn mapping_error(err: io::Error, usable: usize, reserve_hit: bool) -> io::Error {
    let limit = read_max_map_count();
    let in_use = count_mappings();
    let near_limit = reserve_hit || matches!((limit, in_use), (Some(l), Some(u)) if u + 8 >= l);
    let kind = err.kind();
    let msg = if near_limit {
        format!(
            "cannot map a {} KiB ULT stack: the process has {} memory mappings ({} live ULT \
             stacks, {}, and {MAPPING_RESERVE} kept for the rest of the process) and \
             vm.max_map_count is {}; raise it with `sysctl -w vm.max_map_count={}` (root) or \
             use fewer live ULTs ({err})",
            usable / 1024,
            in_use.unwrap_or(0),
            live_stacks(),
            match guard_kind() {
                GuardKind::Marker => "at most one mapping each",
                GuardKind::Protected => "two mappings each, stack and guard page",
            },
            limit.unwrap_or(0),
            limit.unwrap_or(65530).saturating_mul(16),
        )
    } else {
        format!(
            "cannot map a {} KiB ULT stack: out of memory or address space \
             (check `ulimit -v` and vm.overcommit_memory; vm.max_map_count is {}, \
             mappings in use {}): {err}",
            usable / 1024,
            limit.map_or("unknown".to_string(), |l| l.to_string()),
            in_use.map_or("unknown".to_string(), |u| u.to_string()),
        )
    };
    io::Error::new(
        if kind == io::ErrorKind::Other {
            io::ErrorKind::OutOfMemory
        } else {
            kind
        },
        msg,
    )
}

/// `vm.max_map_count`, if readable.
pub fn read_max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn count_mappings() -> Option<usize> {
    let maps = std::fs::read("/proc/self/maps").ok()?;
    Some(maps.iter().filter(|&&b| b == b'\n').count())
}

struct Pool {
    stacks: Vec<UltStack>,
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { stacks: Vec::new(), bytes: 0 }) };
}

static GLOBAL: std::sync::Mutex<Pool> = std::sync::Mutex::new(Pool {
    stacks: Vec::new(),
    bytes: 0,
});

fn global() -> std::sync::MutexGuard<'static, Pool> {
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The usable size a request for `size` bytes gets: at least [`MIN_STACK_SIZE`], rounded up
/// to whole pages (a power of two, so a mask instead of a division on the spawn path).
#[inline]
pub(crate) fn usable_for(size: usize) -> usize {
    let page = page_size();
    debug_assert!(page.is_power_of_two());
    size.max(MIN_STACK_SIZE).saturating_add(page - 1) & !(page - 1)
}

/// Takes a stack of exactly `size` usable bytes (page-rounded) from this thread's pool,
/// refilling it from the global pool if needed, or maps a new one. Called when a thread has
/// no idle worker coroutine of that size (see `raw::workers`), so not once per spawn.
pub(crate) fn take(size: usize) -> io::Result<UltStack> {
    let usable = usable_for(size);
    let pooled = POOL
        .try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if let Some(stack) = pop_matching(&mut pool, usable) {
                return Some(stack);
            }
            // Refill a batch from the global pool.
            let mut global = global();
            let mut moved = 0;
            while moved < LOCAL_POOL_MAX / 2 {
                match pop_matching(&mut global, usable) {
                    Some(stack) => {
                        pool.bytes += stack.mapped_len();
                        pool.stacks.push(stack);
                        moved += 1;
                    }
                    None => break,
                }
            }
            drop(global);
            pop_matching(&mut pool, usable)
        })
        .ok()
        .flatten();
    match pooled {
        Some(stack) => Ok(stack),
        None => UltStack::new(usable),
    }
}

fn pop_matching(pool: &mut Pool, usable: usize) -> Option<UltStack> {
    // Most programs use one size: the last stack almost always matches.
    let idx = pool
        .stacks
        .iter()
        .rposition(|s| s.usable_size() == usable)?;
    let stack = pool.stacks.swap_remove(idx);
    pool.bytes -= stack.mapped_len();
    Some(stack)
}

/// Returns a stack to this thread's pool, spilling a batch to the global pool when the
/// local one is full (and unmapping what the global pool cannot hold).
#[inline]
pub(crate) fn give_back(mut stack: UltStack) {
    stack.note_reuse();
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        pool.bytes += stack.mapped_len();
        pool.stacks.push(stack);
        if pool.stacks.len() > LOCAL_POOL_MAX {
            drop(pool);
            spill_half();
        }
    });
}

/// Moves the older half of this thread's pool to the global pool.
#[cold]
fn spill_half() {
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        let spill: Vec<UltStack> = pool.stacks.drain(..LOCAL_POOL_MAX / 2).collect();
        let spilled: usize = spill.iter().map(UltStack::mapped_len).sum();
        pool.bytes -= spilled;
        drop(pool);
        let mut global = global();
        for s in spill {
            if global.bytes + s.mapped_len() <= POOL_MAX_BYTES {
                global.bytes += s.mapped_len();
                global.stacks.push(s);
            }
            // else: `s` drops here and is unmapped.
        }
    });
}

/// Statistics of the calling thread's stack pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Stacks waiting in the pool, including those of idle worker coroutines (a finished
    /// ULT's coroutine stays ready, on its stack, for the thread's next spawn).
    pub stacks: usize,
    /// Address space they hold, guard pages included.
    pub bytes: usize,
}

/// Reports the calling thread's stack pool.
pub fn pool_stats() -> PoolStats {
    let (idle, idle_bytes) = crate::raw::workers::idle_stacks();
    POOL.with(|pool| {
        let pool = pool.borrow();
        PoolStats {
            stacks: pool.stacks.len() + idle,
            bytes: pool.bytes + idle_bytes,
        }
    })
}

/// Releases the committed pages of every pooled stack on the calling thread, keeping the
/// mappings for reuse. Useful after a burst of deep recursion.
pub fn trim_pool() {
    crate::raw::workers::trim_idle();
    POOL.with(|pool| pool.borrow_mut().stacks.iter_mut().for_each(UltStack::trim));
}

/// Unmaps every pooled stack on the calling thread (idle worker coroutines included) and in
/// the global pool.
pub fn clear_pool() {
    crate::raw::workers::clear();
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        pool.stacks.clear();
        pool.bytes = 0;
    });
    let mut global = global();
    global.stacks.clear();
    global.bytes = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_are_pooled_and_reused() {
        clear_pool();
        let s = take(64 * 1024).unwrap();
        let low = s.low;
        give_back(s);
        assert_eq!(pool_stats().stacks, 1);
        let again = take(64 * 1024).unwrap();
        assert_eq!(again.low, low, "the pooled stack is reused");
        assert_eq!(pool_stats().stacks, 0);
        give_back(again);
        clear_pool();
    }

    #[test]
    fn the_pool_hands_out_only_stacks_of_the_requested_size() {
        clear_pool();
        let page = page_size();
        let small = take(MIN_STACK_SIZE).unwrap();
        let big = take(MIN_STACK_SIZE + 3 * page).unwrap();
        give_back(small);
        give_back(big);
        // The most recent stack is the big one: a smaller request must not get it.
        let s = take(1).unwrap();
        assert_eq!(s.usable_size(), MIN_STACK_SIZE);
        // A request one byte over a page boundary needs the next page.
        let b = take(MIN_STACK_SIZE + 2 * page + 1).unwrap();
        assert_eq!(b.usable_size(), MIN_STACK_SIZE + 3 * page);
        let c = take(MIN_STACK_SIZE + 2 * page).unwrap();
        assert_eq!(c.usable_size(), MIN_STACK_SIZE + 2 * page);
        give_back(s);
        give_back(b);
        give_back(c);
        clear_pool();
    }

    #[test]
    fn a_deep_stack_is_trimmed_when_it_returns_to_the_pool() {
        clear_pool();
        let s = take(1024 * 1024).unwrap();
        let top = s.top;
        for off in (0..256 * 1024).step_by(8) {
            // SAFETY: inside the read-write part of the mapping we own.
            unsafe { ((top - 8 - off) as *mut usize).write_volatile(0xdead) };
        }
        give_back(s);
        let again = take(1024 * 1024).unwrap();
        assert!(!again.went_deep(), "the pool trimmed it on return");
        give_back(again);
        clear_pool();
    }

    #[test]
    fn sizes_round_up_to_pages_and_minimum() {
        let s = UltStack::new(1).unwrap();
        assert_eq!(s.usable_size(), MIN_STACK_SIZE);
        let s = UltStack::new(MIN_STACK_SIZE + 1).unwrap();
        assert_eq!(s.usable_size(), MIN_STACK_SIZE + page_size());
    }

    #[test]
    fn trim_releases_deep_pages() {
        let mut s = UltStack::new(1024 * 1024).unwrap();
        let base = s.top;
        // Use 512 KiB below the top, as deep frames would.
        for off in (0..512 * 1024).step_by(8) {
            // SAFETY: inside the read-write part of the mapping we own.
            unsafe { ((base - 8 - off) as *mut usize).write_volatile(1) };
        }
        let resident = |s: &UltStack| {
            let page = page_size();
            let mut vec = vec![0u8; s.mapped_len() / page];
            // SAFETY: mincore reads the page table for a range we own into a buffer of the
            // right length (one byte per page).
            let rc = unsafe {
                libc::mincore(s.low as *mut libc::c_void, s.mapped_len(), vec.as_mut_ptr())
            };
            assert_eq!(rc, 0);
            vec.iter().filter(|&&b| b & 1 == 1).count()
        };
        assert!(resident(&s) >= 128);
        assert!(s.went_deep());
        s.trim();
        assert!(!s.went_deep(), "trimming zeroes the probe words");
        // The warm top, plus the probe page that the read above mapped to the zero page.
        assert!(resident(&s) <= WARM_BYTES / page_size() + 1);
    }
}
