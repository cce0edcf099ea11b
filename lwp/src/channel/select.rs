//! [`Select`]: wait until one of several channel operations can proceed, the readiness half
//! of `crossbeam_channel::Select` (Go's `select` over receives and sends).
//!
//! # Protocol
//! A select first looks at each operation in turn, starting at a random one so that a busy
//! channel cannot starve the others. If none is ready it makes one [`Watch`] (a fired flag
//! and the caller's unparker) and, for each channel, under that channel's lock, checks the
//! operation again and, if it is still not ready, lists the watch in the channel's watchers
//! of that side. A channel fires and empties the list, after unlocking, whenever it does what
//! makes an operation of that side possible: a message queued or a sender parked (receive),
//! a slot freed or a receiver parked (send), or the other side disconnecting (both). Since
//! the check and the listing happen under the lock that such a change takes, a change after
//! the check finds the watch listed: no lost wake-ups. The caller parks until the watch has
//! fired (or its deadline), then takes the watch out of every list it may still be in (also
//! when its frame unwinds, so no list keeps it) and looks again.
//!
//! Readiness is a moment's observation, as in crossbeam: another receiver can take the
//! message between `ready` and the caller's `try_recv`, so callers complete the operation
//! with `try_recv`/`try_send` and select again if that comes back empty or full.
//!
//! Cost for channels nobody selects on: one empty-list check where a message is queued or a
//! slot freed, and where a caller parks.
//!
//! Who may call what: anyone; a `Select` borrows the handles it watches.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Chan, Inner, ReadyTimeoutError, Receiver, Sender, Side, TryReadyError};
use crate::sync::spin::SpinGuard;
use crate::sync::waitqueue::deadline_after;

/// One waiting select: fired once any watched operation may have become possible.
pub(super) struct Watch {
    fired: AtomicBool,
    unparker: ult::Unparker,
}

impl Watch {
    fn fire(&self) {
        // Release: pairs with the select's acquire load; the change that fired it (made
        // under the channel's lock) is then visible when it looks again.
        self.fired.store(true, Ordering::Release);
        self.unparker.unpark();
    }
}

/// Fires `watchers` (taken from a channel under its lock, which is released by now).
#[inline]
pub(super) fn fire(watchers: Vec<Arc<Watch>>) {
    for w in watchers {
        w.fire();
    }
}

/// Takes `side`'s watchers, unlocks, and fires them. Out of line: only channels that are
/// selected on come here.
#[cold]
#[inline(never)]
pub(super) fn fire_after_unlock<T>(mut g: SpinGuard<'_, Inner<T>>, side: Side) {
    let watchers = g.take_watchers(side);
    drop(g);
    fire(watchers);
}

/// What a select needs from a channel, whatever its message type.
trait Watchable {
    /// Whether an operation of `side` would proceed without waiting.
    fn ready(&self, side: Side) -> bool;
    /// Lists `watch` for `side` unless the operation is ready; returns whether it was.
    fn watch(&self, side: Side, watch: &Arc<Watch>) -> bool;
    /// Takes `watch` out of `side`'s list, if it is still there.
    fn unwatch(&self, side: Side, watch: &Arc<Watch>);
}

impl<T> Watchable for Chan<T> {
    fn ready(&self, side: Side) -> bool {
        self.inner.lock().is_ready(side, self.cap)
    }

    fn watch(&self, side: Side, watch: &Arc<Watch>) -> bool {
        let mut g = self.inner.lock();
        if g.is_ready(side, self.cap) {
            return true;
        }
        match side {
            Side::Recv => g.recv_watchers.push(watch.clone()),
            Side::Send => g.send_watchers.push(watch.clone()),
        }
        false
    }

    fn unwatch(&self, side: Side, watch: &Arc<Watch>) {
        let mut g = self.inner.lock();
        let list = match side {
            Side::Recv => &mut g.recv_watchers,
            Side::Send => &mut g.send_watchers,
        };
        list.retain(|w| !Arc::ptr_eq(w, watch));
    }
}

/// Waits until one of several receives and sends, on channels of any message types, can
/// proceed; like `crossbeam_channel::Select`'s `ready` family. Each operation added gets an
/// index; [`Select::ready`] returns the index of one that is ready: a receive when a message
/// is available (or every sender is gone), a send when there is room or a parked receiver
/// (or every receiver is gone). Complete it with `try_recv`/`try_send`, which may still find
/// it not ready (someone else was faster): then select again.
///
/// A rendezvous channel is ready for a receive only while a sender is parked in `send`, and
/// for a send only while a receiver is parked in `recv`; two selects on its two ends wait for
/// each other forever.
///
/// ```
/// use std::time::Duration;
/// use lwp::channel::{bounded, Select, TryRecvError};
///
/// ult::run(|| {
///     let (numbers_tx, numbers) = bounded::<u32>(4);
///     let (words_tx, words) = bounded::<&str>(4);
///     ult::spawn(move || {
///         ult::sleep(Duration::from_millis(5));
///         words_tx.send("hello").unwrap();
///     });
///     let mut sel = Select::new();
///     let on_number = sel.recv(&numbers);
///     let on_word = sel.recv(&words);
///     let got = loop {
///         let i = sel.ready(); // parks this ULT until one of them can proceed
///         if i == on_word {
///             match words.try_recv() {
///                 Ok(w) => break w,
///                 Err(TryRecvError::Empty) => continue, // taken by someone else
///                 Err(TryRecvError::Disconnected) => panic!("no words"),
///             }
///         }
///         assert_eq!(i, on_number);
///     };
///     assert_eq!(got, "hello");
///     drop(numbers_tx);
/// });
/// ```
pub struct Select<'a> {
    ops: Vec<Option<(&'a dyn Watchable, Side)>>,
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("operations", &self.ops.iter().flatten().count())
            .finish()
    }
}

impl Default for Select<'_> {
    fn default() -> Self {
        Select::new()
    }
}

thread_local! {
    /// Xorshift state for picking where a select starts looking.
    static START: Cell<u64> = const { Cell::new(0) };
}

/// A pseudo-random number below `n` (`n > 0`).
fn random_below(n: usize) -> usize {
    START.with(|s| {
        let mut x = s.get();
        if x == 0 {
            // Seeded from the address of this thread's state: distinct per thread.
            x = (s as *const Cell<u64> as u64) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x % n as u64) as usize
    })
}

/// Takes a select's watch out of the lists it went into, also if the select unwinds.
struct Unwatch<'s, 'a> {
    ops: &'s [Option<(&'a dyn Watchable, Side)>],
    listed: usize,
    watch: Arc<Watch>,
}

impl Drop for Unwatch<'_, '_> {
    fn drop(&mut self) {
        for (chan, side) in self.ops[..self.listed].iter().flatten() {
            chan.unwatch(*side, &self.watch);
        }
    }
}

impl<'a> Select<'a> {
    /// A select with no operations.
    pub fn new() -> Select<'a> {
        Select { ops: Vec::new() }
    }

    /// Adds a receive on `r`; returns its index.
    pub fn recv<T>(&mut self, r: &'a Receiver<T>) -> usize {
        self.add(&*r.chan, Side::Recv)
    }

    /// Adds a send on `s`; returns its index.
    pub fn send<T>(&mut self, s: &'a Sender<T>) -> usize {
        self.add(&*s.chan, Side::Send)
    }

    fn add<T>(&mut self, chan: &'a Chan<T>, side: Side) -> usize {
        self.ops.push(Some((chan, side)));
        self.ops.len() - 1
    }

    /// Removes the operation with index `index` (for example once its channel is
    /// disconnected); other indices stay as they were.
    ///
    /// # Panics
    /// If there is no such operation (never added, or removed already).
    pub fn remove(&mut self, index: usize) {
        match self.ops.get_mut(index) {
            Some(op @ Some(_)) => *op = None,
            _ => panic!("Select::remove: no operation with index {index}"),
        }
    }

    /// The index of an operation that is ready now, if any; never waits.
    pub fn try_ready(&mut self) -> Result<usize, TryReadyError> {
        self.scan().ok_or(TryReadyError)
    }

    /// Parks until one of the operations is ready; returns its index.
    ///
    /// # Panics
    /// If the select has no operations (it would wait forever).
    pub fn ready(&mut self) -> usize {
        assert!(
            self.ops.iter().any(Option::is_some),
            "Select::ready with no operations would wait forever"
        );
        match self.ready_until(None) {
            Ok(i) => i,
            Err(ReadyTimeoutError) => unreachable!("a wait without deadline cannot time out"),
        }
    }

    /// Like [`Select::ready`], but gives up after `timeout` (with no operations, it just
    /// waits that long).
    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<usize, ReadyTimeoutError> {
        self.ready_until(deadline_after(timeout))
    }

    /// Like [`Select::ready`], but gives up at `deadline`.
    pub fn ready_deadline(&mut self, deadline: Instant) -> Result<usize, ReadyTimeoutError> {
        self.ready_until(Some(deadline))
    }

    /// The first ready operation, looking from a random one on.
    fn scan(&self) -> Option<usize> {
        let n = self.ops.len();
        if n == 0 {
            return None;
        }
        let start = random_below(n);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.ops[i].is_some_and(|(chan, side)| chan.ready(side)))
    }

    fn ready_until(&mut self, deadline: Option<Instant>) -> Result<usize, ReadyTimeoutError> {
        loop {
            if let Some(i) = self.scan() {
                return Ok(i);
            }
            let watch = Arc::new(Watch {
                fired: AtomicBool::new(false),
                unparker: ult::unparker(),
            });
            let mut unwatch = Unwatch {
                ops: &self.ops,
                listed: 0,
                watch: watch.clone(),
            };
            let mut ready = None;
            for (i, op) in self.ops.iter().enumerate() {
                unwatch.listed = i + 1;
                if let Some((chan, side)) = op {
                    if chan.watch(*side, &watch) {
                        ready = Some(i);
                        break;
                    }
                }
            }
            if ready.is_none() {
                // Acquire: pairs with `Watch::fire`.
                while !watch.fired.load(Ordering::Acquire) {
                    match deadline {
                        None => ult::park(),
                        Some(d) if Instant::now() < d => ult::park_deadline(d),
                        Some(_) => return Err(ReadyTimeoutError), // `unwatch` unlists it
                    }
                }
            }
            drop(unwatch);
            if let Some(i) = ready {
                return Ok(i);
            }
        }
    }
}
