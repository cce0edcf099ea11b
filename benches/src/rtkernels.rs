//! Measurement kernels of the `runtime` experiment (issue 3's targets): the loops that time
//! our runtime and its peers on the same operation. Each returns nanoseconds per operation
//! (or, for skynet, the total time) for one repetition; the experiment repeats and
//! interleaves them.
//!
//! | kernel | operation |
//! |---|---|
//! | [`lwp_yield_pingpong`] | two ULTs yielding to each other on one LWP: one round trip |
//! | [`lwp_channel_pingpong`] | two ULTs exchanging a message through two channels: one round trip |
//! | [`lwp_spawn_join`], [`std_spawn_join`], [`tokio_spawn_join`] | spawn a task and wait for it, in batches |
//! | [`lwp_skynet`], [`tokio_skynet`] | skynet: a tree of fan-out 10 with `leaves` leaves, sums sent up through channels |
//! | [`parked_rss`] | RSS growth per parked ULT, in a child process (see `bin/lab.rs`) |

use std::time::{Duration, Instant};

use lwp::channel;

/// One round trip = A yields to B, B yields back (four coroutine switches through the
/// scheduler). Runs inside `rt` (many-to-one or a one-LWP many-to-many).
pub fn lwp_yield_pingpong(rt: &lwp::Runtime, rounds: u64) -> f64 {
    rt.run(move || {
        let partner = lwp::spawn(move || {
            for _ in 0..rounds + 1 {
                lwp::yield_now();
            }
        });
        lwp::yield_now();
        let t = Instant::now();
        for _ in 0..rounds {
            lwp::yield_now();
        }
        let e = t.elapsed();
        let _ = partner.join();
        e.as_nanos() as f64 / rounds as f64
    })
}

/// One round trip = A sends to B through channel 1, B answers through channel 2.
pub fn lwp_channel_pingpong(rt: &lwp::Runtime, rounds: u64) -> f64 {
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
        // Warm up: both ULTs started, stacks touched.
        for i in 0..1000 {
            let _ = to_b.send(i);
            let _ = from_b.recv();
        }
        let t = Instant::now();
        for i in 0..rounds {
            let _ = to_b.send(i);
            let _ = from_b.recv();
        }
        let e = t.elapsed();
        drop(to_b);
        let _ = echo.join();
        e.as_nanos() as f64 / rounds as f64
    })
}

/// Spawn + join of `n` ULTs, in batches of `batch` (spawn the batch, then join it), so that
/// LWPs can share the work; the caller is a ULT of `rt`.
pub fn lwp_spawn_join(rt: &lwp::Runtime, n: u64, batch: u64) -> f64 {
    rt.run(move || {
        let t = Instant::now();
        let mut done = 0;
        while done < n {
            let k = batch.min(n - done);
            let hs: Vec<_> = (0..k)
                .map(|i| lwp::spawn(move || std::hint::black_box(i)))
                .collect();
            for h in hs {
                let _ = h.join();
            }
            done += k;
        }
        t.elapsed().as_nanos() as f64 / n as f64
    })
}

/// `std::thread` spawn + join, in batches like [`lwp_spawn_join`].
pub fn std_spawn_join(n: u64, batch: u64) -> f64 {
    let t = Instant::now();
    let mut done = 0;
    while done < n {
        let k = batch.min(n - done);
        let hs: Vec<_> = (0..k)
            .map(|i| std::thread::spawn(move || std::hint::black_box(i)))
            .collect();
        for h in hs {
            let _ = h.join();
        }
        done += k;
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// A tokio multi-thread runtime with `workers` workers.
pub fn tokio_runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .build()
}

/// tokio task spawn + join (await the JoinHandle), in batches, from inside a task.
pub fn tokio_spawn_join(rt: &tokio::runtime::Runtime, n: u64, batch: u64) -> f64 {
    rt.block_on(async move {
        tokio::spawn(async move {
            let t = Instant::now();
            let mut done = 0;
            while done < n {
                let k = batch.min(n - done);
                let hs: Vec<_> = (0..k)
                    .map(|i| tokio::spawn(async move { std::hint::black_box(i) }))
                    .collect();
                for h in hs {
                    let _ = h.await;
                }
                done += k;
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .await
        .unwrap_or(f64::NAN)
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

/// skynet on `rt`: returns (total time, sum).
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

/// skynet on tokio: returns (total time, sum).
pub fn tokio_skynet(rt: &tokio::runtime::Runtime, leaves: u64) -> (Duration, u64) {
    rt.block_on(async move {
        let t = Instant::now();
        let sum = tokio::spawn(skynet_tokio(0, leaves, 10)).await.unwrap_or(0);
        (t.elapsed(), sum)
    })
}

/// The expected skynet sum for `leaves` leaves: 0 + 1 + ... + (leaves - 1).
pub fn skynet_expected(leaves: u64) -> u64 {
    leaves * (leaves - 1) / 2
}

/// Resident set size of this process in bytes (from `/proc/self/statm`).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(resident * 4096)
}

/// Memory mappings of this process (lines of `/proc/self/maps`).
pub fn mappings() -> Option<usize> {
    let maps = std::fs::read("/proc/self/maps").ok()?;
    Some(maps.iter().filter(|&&b| b == b'\n').count())
}

/// The largest number of ULTs that can be alive at once under the current
/// `vm.max_map_count` (two mappings each), with a safety margin.
pub fn max_live_ults() -> Option<u64> {
    let limit = ult::stack::read_max_map_count()? as u64;
    let used = mappings()? as u64;
    Some(limit.saturating_sub(used + 1000) / 2)
}

/// Parks `n` ULTs at once on a many-to-many runtime with `lwps` LWPs and returns (RSS
/// growth per parked ULT in bytes, how many were parked). Meant to run in a fresh child
/// process so that nothing else moves the RSS.
pub fn parked_rss(n: u64, lwps: usize) -> Result<(f64, u64), String> {
    let rt = lwp::Runtime::builder()
        .lwps(lwps)
        .sysmon_warnings(false)
        .build()
        .map_err(|e| e.to_string())?;
    // Warm the runtime (threads, pools) before the baseline.
    rt.run(|| lwp::spawn(|| ()).join().ok());
    let before = rss_bytes().ok_or("cannot read /proc/self/statm")?;
    let (parked, unparkers) = rt.run(move || {
        let started = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut handles = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let started = started.clone();
            let spawned = lwp::Builder::new().spawn(move || {
                started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                lwp::park();
            });
            match spawned {
                Ok(h) => handles.push(h),
                Err(_) => break, // the mapping limit: report how many fit
            }
        }
        // Wait until every ULT has run up to its park.
        let count = handles.len() as u64;
        while started.load(std::sync::atomic::Ordering::Relaxed) < count {
            lwp::sleep(Duration::from_millis(5));
        }
        (count, handles)
    });
    let after = rss_bytes().ok_or("cannot read /proc/self/statm")?;
    let per = (after.saturating_sub(before)) as f64 / parked.max(1) as f64;
    // Release them so the runtime shuts down cleanly.
    for h in &unparkers {
        h.ult().unpark();
    }
    for h in unparkers {
        let _ = h.join();
    }
    Ok((per, parked))
}
