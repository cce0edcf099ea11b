//! Measurement kernels of the `runtime` experiment (issue 3's targets): the loops that time
//! our runtime (`lwp`) and its in-process peers (`std::thread`, tokio) on the same operation.
//! Each returns nanoseconds per operation (or, for skynet, the total time; for the parked
//! rows, bytes) for one repetition; `experiments::runtime` repeats and interleaves them, and
//! `bin/lab.rs` runs the parked kernels in child processes (`lab internal-peer ...`) so that
//! the RSS they read belongs to nothing else.
//!
//! | kernel | operation |
//! |---|---|
//! | [`lwp_yield_pingpong`] | two ULTs yielding to each other on one LWP: one round trip |
//! | [`lwp_channel_pingpong`], [`tokio_channel_pingpong`] | two ULTs / tasks exchanging a message through two capacity-1 channels: one round trip |
//! | [`lwp_spawn_join`], [`std_spawn_join`], [`tokio_spawn_join`] | spawn a task and wait for it, in batches |
//! | [`lwp_skynet`], [`tokio_skynet`] | skynet: a tree of fan-out 10 with `leaves` leaves, sums sent up through channels |
//! | [`parked_rss`], [`tokio_parked`] | RSS growth per parked ULT / task, in a child process |
//!
//! Invariants: every kernel builds nothing global; the runtime it measures is passed in (or
//! built and dropped inside a child process), so the experiment decides pinning and lifetime.
//! A kernel that cannot complete returns `Err` with the reason, never a silent NaN or a
//! wrong count. The map-limit arithmetic ([`live_ult_budget`], [`required_map_count`]) is
//! pure so it can be tested.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lwp::channel;
use serde::{Deserialize, Serialize};

/// One round trip = A yields to B, B yields back (two ULT switches each way through the
/// scheduler). Runs inside `rt` (meant for a one-LWP runtime). `warm` round trips run before
/// the `rounds` timed ones; returns nanoseconds per round trip.
pub fn lwp_yield_pingpong(rt: &lwp::Runtime, warm: u64, rounds: u64) -> f64 {
    let rounds = rounds.max(1);
    rt.run(move || {
        let partner = lwp::spawn(move || {
            for _ in 0..warm + rounds + 1 {
                lwp::yield_now();
            }
        });
        for _ in 0..warm + 1 {
            lwp::yield_now();
        }
        let t = Instant::now();
        for _ in 0..rounds {
            lwp::yield_now();
        }
        let e = t.elapsed();
        let _ = partner.join();
        e.as_nanos() as f64 / rounds as f64
    })
}

/// One round trip = A sends to B through a `bounded(1)` channel, B answers through another.
/// `warm` round trips first; returns nanoseconds per round trip.
pub fn lwp_channel_pingpong(rt: &lwp::Runtime, warm: u64, rounds: u64) -> Result<f64, String> {
    let rounds = rounds.max(1);
    rt.run(move || {
        let (to_b, from_a) = channel::bounded::<u64>(1);
        let (to_a, from_b) = channel::bounded::<u64>(1);
        let echo = lwp::spawn(move || {
            for v in from_a.iter() {
                if to_a.send(v).is_err() {
                    break;
                }
            }
        });
        let mut ok = true;
        // Warm up: both ULTs started, stacks touched.
        for i in 0..warm {
            ok &= to_b.send(i).is_ok() && from_b.recv().is_ok();
        }
        let t = Instant::now();
        for i in 0..rounds {
            ok &= to_b.send(i).is_ok() && from_b.recv().is_ok();
        }
        let e = t.elapsed();
        drop(to_b);
        let joined = echo.join().is_ok();
        if !(ok && joined) {
            return Err("an lwp channel send or receive failed, or the echo ULT panicked".into());
        }
        Ok(e.as_nanos() as f64 / rounds as f64)
    })
}

/// The same ping-pong on a tokio current_thread runtime: two tasks, `tokio::sync::mpsc`
/// channels of capacity 1.
pub fn tokio_channel_pingpong(warm: u64, rounds: u64) -> Result<f64, String> {
    let rounds = rounds.max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async move {
        let (to_b, mut from_a) = tokio::sync::mpsc::channel::<u64>(1);
        let (to_a, mut from_b) = tokio::sync::mpsc::channel::<u64>(1);
        let echo = tokio::spawn(async move {
            while let Some(v) = from_a.recv().await {
                if to_a.send(v).await.is_err() {
                    break;
                }
            }
        });
        let pinger = tokio::spawn(async move {
            let mut ok = true;
            for i in 0..warm {
                ok &= to_b.send(i).await.is_ok() && from_b.recv().await.is_some();
            }
            let t = Instant::now();
            for i in 0..rounds {
                ok &= to_b.send(i).await.is_ok() && from_b.recv().await.is_some();
            }
            (ok, t.elapsed())
        });
        let (ok, e) = pinger.await.map_err(|e| format!("tokio task: {e}"))?;
        echo.await.map_err(|e| format!("tokio task: {e}"))?;
        if !ok {
            return Err("a tokio channel send or receive failed".into());
        }
        Ok(e.as_nanos() as f64 / rounds as f64)
    })
}

/// Spawn + join of `n` ULTs, in batches of `batch` (spawn the batch, then join it), so that
/// LWPs can share the work; the caller is a ULT of `rt`. One batch runs first as a warm-up
/// (LWPs awake, stack pools primed). Returns nanoseconds per spawn + join.
pub fn lwp_spawn_join(rt: &lwp::Runtime, n: u64, batch: u64) -> Result<f64, String> {
    let (n, batch) = (n.max(1), batch.max(1));
    rt.run(move || {
        let run = |n: u64| -> Result<(), String> {
            let mut done = 0;
            while done < n {
                let k = batch.min(n - done);
                let mut hs = Vec::with_capacity(k as usize);
                for i in 0..k {
                    let h = lwp::Builder::new()
                        .spawn(move || std::hint::black_box(i))
                        .map_err(|e| format!("spawning a ULT: {e}"))?;
                    hs.push(h);
                }
                for h in hs {
                    h.join().map_err(|_| "a ULT panicked".to_string())?;
                }
                done += k;
            }
            Ok(())
        };
        run(batch)?;
        let t = Instant::now();
        run(n)?;
        Ok(t.elapsed().as_nanos() as f64 / n as f64)
    })
}

/// `std::thread` spawn + join, in batches like [`lwp_spawn_join`]. Returns nanoseconds per
/// spawn + join.
pub fn std_spawn_join(n: u64, batch: u64) -> Result<f64, String> {
    let (n, batch) = (n.max(1), batch.max(1));
    let t = Instant::now();
    let mut done = 0;
    while done < n {
        let k = batch.min(n - done);
        let mut hs = Vec::with_capacity(k as usize);
        for i in 0..k {
            let h = std::thread::Builder::new()
                .spawn(move || std::hint::black_box(i))
                .map_err(|e| format!("spawning a kernel thread: {e}"))?;
            hs.push(h);
        }
        for h in hs {
            h.join().map_err(|_| "a thread panicked".to_string())?;
        }
        done += k;
    }
    Ok(t.elapsed().as_nanos() as f64 / n as f64)
}

/// A tokio multi-thread runtime with `workers` workers (no I/O or timer driver).
pub fn tokio_runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .build()
}

/// tokio task spawn + join (await the JoinHandle), in batches, from inside a task; one batch
/// of warm-up first. Returns nanoseconds per spawn + join.
pub fn tokio_spawn_join(rt: &tokio::runtime::Runtime, n: u64, batch: u64) -> Result<f64, String> {
    let (n, batch) = (n.max(1), batch.max(1));
    rt.block_on(async move {
        tokio::spawn(async move {
            let run = |n: u64| async move {
                let mut done = 0;
                while done < n {
                    let k = batch.min(n - done);
                    let hs: Vec<_> = (0..k)
                        .map(|i| tokio::spawn(async move { std::hint::black_box(i) }))
                        .collect();
                    for h in hs {
                        h.await.map_err(|e| format!("tokio task: {e}"))?;
                    }
                    done += k;
                }
                Ok::<(), String>(())
            };
            run(batch).await?;
            let t = Instant::now();
            run(n).await?;
            Ok(t.elapsed().as_nanos() as f64 / n as f64)
        })
        .await
        .map_err(|e| format!("tokio task: {e}"))?
    })
}

fn skynet_ult(num: u64, size: u64, div: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let (tx, rx) = channel::bounded::<u64>(div as usize);
    let sub = size / div;
    for i in 0..div {
        let tx = tx.clone();
        lwp::spawn(move || {
            let _ = tx.send(skynet_ult(num + i * sub, sub, div));
        });
    }
    drop(tx);
    rx.iter().sum()
}

/// skynet on `rt`: returns (total time, sum). `leaves` should be a power of 10.
pub fn lwp_skynet(rt: &lwp::Runtime, leaves: u64) -> (Duration, u64) {
    rt.run(move || {
        let t = Instant::now();
        let sum = skynet_ult(0, leaves, 10);
        (t.elapsed(), sum)
    })
}

fn skynet_tokio(
    num: u64,
    size: u64,
    div: u64,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>> {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(div as usize);
        let sub = size / div;
        for i in 0..div {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(skynet_tokio(num + i * sub, sub, div).await).await;
            });
        }
        drop(tx);
        let mut sum = 0;
        while let Some(v) = rx.recv().await {
            sum += v;
        }
        sum
    })
}

/// skynet on tokio: returns (total time, sum); a panicked root task gives sum 0 (the lab
/// checks the sum).
pub fn tokio_skynet(rt: &tokio::runtime::Runtime, leaves: u64) -> (Duration, u64) {
    rt.block_on(async move {
        let t = Instant::now();
        let sum = tokio::spawn(skynet_tokio(0, leaves, 10)).await.unwrap_or(0);
        (t.elapsed(), sum)
    })
}

/// The expected skynet sum for `leaves` leaves: 0 + 1 + ... + (leaves - 1).
pub fn skynet_expected(leaves: u64) -> u64 {
    leaves * leaves.saturating_sub(1) / 2
}

/// Resident set size of this process in bytes (from `/proc/self/statm`).
pub fn rss_bytes() -> Option<u64> {
    crate::sys::rss_bytes()
}

/// Page-table memory of this process in bytes (`VmPTE` in `/proc/self/status`): not part of
/// the RSS, but paid per mapped stack page.
pub fn page_table_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmPTE:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Memory mappings of this process (lines of `/proc/self/maps`).
pub fn mappings() -> Option<usize> {
    crate::echo::mappings_of(std::process::id()).map(|n| n as usize)
}

/// Mappings each live ULT needs at most: its stack's guard page and its usable part, where
/// the guard page is `PROT_NONE` (may's coroutines always; ours before Linux 6.13, while
/// with guard markers they share mappings: `ult::stack::GuardKind`).
pub const MAPPINGS_PER_ULT: u64 = 2;

/// Mappings kept free for everything else a process maps while the ULTs live (heap arenas,
/// thread stacks, a peer runtime's own pools): a fixed part plus 2% of the limit.
pub fn map_margin(limit: u64) -> u64 {
    4_000 + limit / 50
}

/// How many ULTs can be alive at once under a `vm.max_map_count` of `limit` when `used`
/// mappings exist already, keeping [`map_margin`] free.
pub fn live_ult_budget(limit: u64, used: u64) -> u64 {
    limit.saturating_sub(used + map_margin(limit)) / MAPPINGS_PER_ULT
}

/// The `vm.max_map_count` that lets `n` ULTs (and as many of a peer's stackful coroutines)
/// be alive at once: two mappings each plus a tenth for everything else, e.g. 2,200,000 for
/// one million.
pub fn required_map_count(n: u64) -> u64 {
    let need = MAPPINGS_PER_ULT * n + n / 5;
    // Never less than what the margin arithmetic of `live_ult_budget` needs.
    let mut limit = need.max(65_530);
    while live_ult_budget(limit, 1_000) < n {
        limit += limit / 50 + 1_000;
    }
    limit
}

/// The largest number of ULTs that can be alive at once in this process under the current
/// `vm.max_map_count` (two mappings each), with the margin of [`map_margin`].
pub fn max_live_ults() -> Option<u64> {
    let limit = ult::stack::read_max_map_count()? as u64;
    let used = mappings()? as u64;
    Some(live_ult_budget(limit, used))
}

/// What a parked-RSS child process reports (one JSON line on stdout).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ParkedOutput {
    /// Tasks asked for.
    pub requested: u64,
    /// Tasks actually parked at once when the RSS was read.
    pub parked: u64,
    /// RSS after parking them minus RSS before (bytes).
    pub rss_growth_bytes: i64,
    /// Page-table growth (bytes), when the process could read it.
    #[serde(default)]
    pub page_table_growth_bytes: Option<i64>,
    /// The runtime, in words.
    #[serde(default)]
    pub runtime: String,
    /// Why fewer than `requested` were parked, if so.
    #[serde(default)]
    pub shortfall: Option<String>,
}

impl ParkedOutput {
    /// RSS growth per parked task, in bytes; `None` if nothing was parked.
    pub fn rss_per_task(&self) -> Option<f64> {
        (self.parked > 0).then(|| self.rss_growth_bytes as f64 / self.parked as f64)
    }

    /// Page-table growth per parked task, in bytes.
    pub fn page_tables_per_task(&self) -> Option<f64> {
        let p = self.page_table_growth_bytes?;
        (self.parked > 0).then(|| p as f64 / self.parked as f64)
    }
}

/// Parks `n` ULTs at once (default stacks) on a many-to-many runtime with `lwps` LWPs and
/// reports the RSS growth. Meant to run in a fresh child process so that nothing else moves
/// the RSS.
///
/// At most [`max_live_ults`] are spawned: a process whose stacks use up `vm.max_map_count`
/// to the last mapping cannot map anything else either, and the next allocation that needs a
/// fresh mapping aborts it. A spawn that fails anyway stops the spawning. Either way the
/// report holds how many were parked and why no more.
pub fn parked_rss(n: u64, lwps: usize) -> Result<ParkedOutput, String> {
    let rt = lwp::Runtime::builder()
        .lwps(lwps.max(1))
        .sysmon_warnings(false)
        .build()
        .map_err(|e| format!("building the runtime: {e}"))?;
    // Warm the runtime (threads, pools) before the baseline.
    rt.run(|| lwp::spawn(|| ()).join().ok());
    let before = rss_bytes().ok_or("cannot read /proc/self/statm")?;
    let pte_before = page_table_bytes();
    let release = Arc::new(AtomicBool::new(false));
    let rel = release.clone();
    let fit = max_live_ults().map_or(n, |b| n.min(b));
    let capped = (fit < n).then(|| {
        format!(
            "vm.max_map_count ({}) lets this process keep only {fit} ULT stacks alive with a \
             safety margin",
            ult::stack::read_max_map_count()
                .map(|m| m.to_string())
                .unwrap_or_else(|| "unknown".into())
        )
    });
    let (handles, shortfall) = rt.run(move || {
        let started = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::with_capacity(fit as usize);
        let mut shortfall = capped;
        for _ in 0..fit {
            let (started, rel) = (started.clone(), rel.clone());
            let spawned = lwp::Builder::new().spawn(move || {
                started.fetch_add(1, Ordering::Relaxed);
                // Acquire: pairs with the Release store before the unparks; park may
                // return spuriously, so the flag decides.
                while !rel.load(Ordering::Acquire) {
                    lwp::park();
                }
            });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shortfall = Some(format!("spawn failed after {} ULTs: {e}", handles.len()));
                    break;
                }
            }
        }
        // Wait until every ULT has run up to its park.
        let count = handles.len() as u64;
        let deadline = Instant::now() + Duration::from_secs(300);
        while started.load(Ordering::Relaxed) < count {
            if Instant::now() > deadline {
                shortfall = Some(format!(
                    "only {} of {count} ULTs reached their park within 300 s",
                    started.load(Ordering::Relaxed)
                ));
                break;
            }
            lwp::sleep(Duration::from_millis(5));
        }
        (handles, shortfall)
    });
    let after = rss_bytes().ok_or("cannot read /proc/self/statm")?;
    let pte_after = page_table_bytes();
    let parked = handles.len() as u64;
    // Release: pairs with the Acquire load in the parked ULTs.
    release.store(true, Ordering::Release);
    for h in &handles {
        h.ult().unpark();
    }
    for h in handles {
        let _ = h.join();
    }
    Ok(ParkedOutput {
        requested: n,
        parked,
        rss_growth_bytes: after as i64 - before as i64,
        page_table_growth_bytes: pte_before.zip(pte_after).map(|(b, a)| a as i64 - b as i64),
        runtime: format!(
            "lwp {} many-to-many, {} LWPs, default stacks ({} KiB)",
            env!("CARGO_PKG_VERSION"),
            lwps.max(1),
            ult::stack::DEFAULT_STACK_SIZE / 1024
        ),
        shortfall,
    })
}

/// `n` tokio tasks parked at once on a oneshot receiver each, on a multi-thread runtime
/// with `workers` workers; reports the RSS growth (child process, like [`parked_rss`]).
pub fn tokio_parked(n: u64, workers: usize) -> Result<ParkedOutput, String> {
    let rt = tokio_runtime(workers).map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async { tokio::spawn(async {}).await })
        .map_err(|e| format!("tokio task: {e}"))?;
    let before = rss_bytes().ok_or("cannot read /proc/self/statm")?;
    let pte_before = page_table_bytes();
    let started = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::with_capacity(n as usize);
    {
        let _enter = rt.enter();
        for _ in 0..n {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let (s, d) = (started.clone(), done.clone());
            // The JoinHandle is dropped: the task is detached and counted through `done`.
            drop(tokio::spawn(async move {
                s.fetch_add(1, Ordering::Relaxed);
                let _ = rx.await;
                d.fetch_add(1, Ordering::Relaxed);
            }));
            senders.push(tx);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while started.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {n} tokio tasks started within 300 s",
                started.load(Ordering::Relaxed)
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = rss_bytes().ok_or("cannot read /proc/self/statm")?;
    let pte_after = page_table_bytes();
    for tx in senders {
        let _ = tx.send(());
    }
    while done.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(ParkedOutput {
        requested: n,
        parked: n,
        rss_growth_bytes: after as i64 - before as i64,
        page_table_growth_bytes: pte_before.zip(pte_after).map(|(b, a)| a as i64 - b as i64),
        runtime: format!(
            "tokio {} multi-thread, {} workers",
            crate::peers::TOKIO_VERSION,
            workers.max(1)
        ),
        shortfall: None,
    })
}
