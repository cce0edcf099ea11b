//! Multi-producer multi-consumer channels whose blocking operations park the ULT, never its
//! kernel thread: [`unbounded`], [`bounded`] and rendezvous (`bounded(0)`), with the API of
//! `crossbeam-channel` (both [`Sender`] and [`Receiver`] are `Clone`).
//!
//! ```
//! use lwp::channel;
//!
//! let sum = ult::run(|| {
//!     let (tx, rx) = channel::bounded(4);
//!     for id in 0..3u64 {
//!         let tx = tx.clone();
//!         ult::spawn(move || {
//!             for i in 0..10 {
//!                 tx.send(id * 100 + i).unwrap();
//!             }
//!         });
//!     }
//!     drop(tx); // the loop below ends when every sender is gone
//!     rx.iter().sum::<u64>()
//! });
//! assert_eq!(sum, 3 * 45 + 10 * (0 + 100 + 200));
//! ```
//!
//! # Design
//! One short internal lock (`std::sync::Mutex`, held for a few queue operations, never
//! across a park and never while a user value is dropped) guards the whole channel state:
//! the message queue, the "all senders gone" / "all receivers gone" flags and two FIFO
//! lists of parked waiters (senders waiting for room, receivers waiting for a message).
//! Because waiters enqueue under the same lock that guards the queue, the no-lost-wake-up
//! protocol of `sync::waitqueue` applies directly.
//!
//! - **Bounded / unbounded**: a `VecDeque<T>`. `send` pushes and, only if a receiver is
//!   parked, wakes the oldest one; `recv` pops and, for a bounded channel with a parked
//!   sender, wakes the oldest sender. A woken waiter retries (no hand-off). A bounded
//!   channel's queue never grows past its capacity, so after warming up it allocates
//!   nothing per message; an unbounded one grows its ring buffer geometrically.
//! - **Rendezvous** (`bounded(0)`): there is no buffer. A sender that finds a receiver
//!   parked hands its message over (queued for that receiver, which is committed to take
//!   it) and returns at once; otherwise it queues the message together with its own waiter
//!   and parks until a receiver takes it (its token says `TAKEN`). A timed-out or
//!   disconnected sender takes its message back out of the queue under the lock.
//! - **Timeouts**: a waiter whose deadline passes checks its token under the lock. Still
//!   listed: it leaves and reports `Timeout`. Already notified: it makes one last attempt
//!   (a notified receiver takes the message meant for it; a notified sender uses the room),
//!   so a notification is never lost.
//! - **Disconnection** (as std/crossbeam): when the last `Sender` goes, parked receivers
//!   wake, drain what is left, then get `Disconnected`. When the last `Receiver` goes,
//!   parked senders wake and get their message back in the error; queued messages are
//!   dropped at that point (outside the lock).
//!
//! Who may call what: any ULT or kernel thread may use any handle; handles are `Send` and
//! `Sync` when `T: Send`.

mod error;

pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::waitqueue::{deadline_after, lock_internal, Waiter, WaiterList, Wake, WAITING};

/// Token: the state changed (a message, room, or a disconnection): try again.
const NOTIFIED: u32 = 1;
/// Token (rendezvous senders): a receiver took your message.
const TAKEN: u32 = 2;
/// Token: the other side is gone.
const DISCONNECTED: u32 = 3;

/// At most this many slots are reserved up front for a bounded channel; the rest grow on
/// demand (once) up to the capacity.
const PREALLOC_LIMIT: usize = 1024;

/// Creates a channel of unlimited capacity: `send` never blocks.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    Chan::pair(None)
}

/// Creates a channel holding at most `cap` messages: `send` parks while it is full.
/// `bounded(0)` is a rendezvous channel: each `send` waits until a receiver takes its
/// message.
///
/// ```
/// use lwp::channel::{bounded, TrySendError};
///
/// let (tx, rx) = bounded(1);
/// tx.send(1).unwrap();
/// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
/// assert_eq!(rx.recv(), Ok(1));
///
/// // Rendezvous: the sender waits for the receiver.
/// ult::run(|| {
///     let (tx, rx) = bounded(0);
///     let h = ult::spawn(move || tx.send("hello").unwrap());
///     assert_eq!(rx.recv(), Ok("hello"));
///     h.join().unwrap();
/// });
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    Chan::pair(Some(cap))
}

/// The sending half of a channel. Clone it for more senders; the channel disconnects for
/// receivers when the last one is dropped.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half of a channel. Clone it for more receivers (each message goes to one
/// of them); the channel disconnects for senders when the last one is dropped.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

/// A message a rendezvous sender offers, and the sender's waiter if it is parked for it
/// (`None`: the sender already returned, because a parked receiver was committed to it).
struct Offer<T> {
    value: T,
    sender: Option<Arc<Waiter>>,
}

struct Inner<T> {
    /// Buffered messages (bounded and unbounded channels).
    queue: VecDeque<T>,
    /// Offered messages (rendezvous channels).
    offers: VecDeque<Offer<T>>,
    senders_gone: bool,
    receivers_gone: bool,
    recv_waiters: WaiterList,
    send_waiters: WaiterList,
}

struct Chan<T> {
    inner: std::sync::Mutex<Inner<T>>,
    /// `None`: unbounded; `Some(0)`: rendezvous.
    cap: Option<usize>,
    /// Live `Sender`s / `Receiver`s. Only the transition to 0 matters, and it is acted on
    /// under the lock (the `*_gone` flags), so these need no ordering with the queue.
    senders: AtomicUsize,
    receivers: AtomicUsize,
}

/// How long an operation may block.
#[derive(Clone, Copy)]
enum Block {
    /// Not at all (`try_*`).
    No,
    /// Until the deadline (`None`: forever).
    Until(Option<Instant>),
}

impl Block {
    fn expired(self) -> bool {
        match self {
            Block::No => true,
            Block::Until(None) => false,
            Block::Until(Some(d)) => Instant::now() >= d,
        }
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Block::No => Some(Instant::now()),
            Block::Until(d) => d,
        }
    }
}

enum SendFail<T> {
    /// Would block (full, or no receiver for a rendezvous) and may not, or the deadline
    /// passed.
    Full(T),
    Disconnected(T),
}

enum RecvFail {
    Empty,
    Disconnected,
}

impl<T> Chan<T> {
    fn pair(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
        let queue = match cap {
            Some(c) => VecDeque::with_capacity(c.min(PREALLOC_LIMIT)),
            None => VecDeque::new(),
        };
        let chan = Arc::new(Chan {
            inner: std::sync::Mutex::new(Inner {
                queue,
                offers: VecDeque::new(),
                senders_gone: false,
                receivers_gone: false,
                recv_waiters: WaiterList::new(),
                send_waiters: WaiterList::new(),
            }),
            cap,
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
        });
        (Sender { chan: chan.clone() }, Receiver { chan })
    }

    fn is_rendezvous(&self) -> bool {
        self.cap == Some(0)
    }

    fn send(&self, value: T, block: Block) -> Result<(), SendFail<T>> {
        if self.is_rendezvous() {
            self.send_rendezvous(value, block)
        } else {
            self.send_buffered(value, block)
        }
    }

    fn send_buffered(&self, value: T, block: Block) -> Result<(), SendFail<T>> {
        let mut last_try = matches!(block, Block::No);
        loop {
            let mut g = lock_internal(&self.inner);
            if g.receivers_gone {
                return Err(SendFail::Disconnected(value));
            }
            let has_room = match self.cap {
                Some(c) => g.queue.len() < c,
                None => true,
            };
            if has_room {
                g.queue.push_back(value);
                let wake = g.recv_waiters.notify_one(NOTIFIED);
                drop(g);
                drop(wake); // unpark after unlocking
                return Ok(());
            }
            if last_try || block.expired() {
                return Err(SendFail::Full(value));
            }
            let w = Waiter::current();
            g.send_waiters.push_back(w.clone());
            drop(g);
            if w.wait_deadline(block.deadline()).is_none() {
                let mut g = lock_internal(&self.inner);
                if w.token() == WAITING && g.send_waiters.remove(&w) {
                    drop(g);
                    return Err(SendFail::Full(value));
                }
                // Notified while timing out: the room is ours to use, one last attempt.
                last_try = true;
            }
        }
    }

    fn send_rendezvous(&self, value: T, block: Block) -> Result<(), SendFail<T>> {
        let w = {
            let mut g = lock_internal(&self.inner);
            if g.receivers_gone {
                return Err(SendFail::Disconnected(value));
            }
            if let Some(wake) = g.recv_waiters.notify_one(NOTIFIED) {
                // A parked receiver is committed to take an offer: ours is done.
                g.offers.push_back(Offer {
                    value,
                    sender: None,
                });
                drop(g);
                drop(wake);
                return Ok(());
            }
            if block.expired() {
                return Err(SendFail::Full(value));
            }
            let w = Waiter::current();
            g.offers.push_back(Offer {
                value,
                sender: Some(w.clone()),
            });
            w
        };
        if w.wait_deadline(block.deadline()) == Some(TAKEN) {
            Ok(())
        } else {
            // Timed out or disconnected: take the offer back unless a receiver took it.
            let mut g = lock_internal(&self.inner);
            if w.token() == TAKEN {
                Ok(())
            } else {
                let pos = g
                    .offers
                    .iter()
                    .position(|o| o.sender.as_ref().is_some_and(|s| Arc::ptr_eq(s, &w)));
                match pos.and_then(|i| g.offers.remove(i)) {
                    Some(offer) if g.receivers_gone => Err(SendFail::Disconnected(offer.value)),
                    Some(offer) => Err(SendFail::Full(offer.value)),
                    // Not found: a receiver took it after all (its token store is what we
                    // read above, so this is only defensive).
                    None => Ok(()),
                }
            }
        }
    }

    fn recv(&self, block: Block) -> Result<T, RecvFail> {
        let mut last_try = matches!(block, Block::No);
        loop {
            let mut g = lock_internal(&self.inner);
            if let Some(value) = g.queue.pop_front() {
                let wake = if self.cap.is_some() {
                    g.send_waiters.notify_one(NOTIFIED)
                } else {
                    None
                };
                drop(g);
                drop(wake);
                return Ok(value);
            }
            if let Some(offer) = g.offers.pop_front() {
                let wake = offer.sender.map(|s| Wake::notify_detached(s, TAKEN));
                drop(g);
                drop(wake);
                return Ok(offer.value);
            }
            if g.senders_gone {
                return Err(RecvFail::Disconnected);
            }
            if last_try || block.expired() {
                return Err(RecvFail::Empty);
            }
            let w = Waiter::current();
            g.recv_waiters.push_back(w.clone());
            drop(g);
            if w.wait_deadline(block.deadline()).is_none() {
                let mut g = lock_internal(&self.inner);
                if w.token() == WAITING && g.recv_waiters.remove(&w) {
                    drop(g);
                    return Err(RecvFail::Empty);
                }
                // Notified while timing out: a message (maybe offered to us alone) is there,
                // one last attempt.
                last_try = true;
            }
        }
    }

    fn len(&self) -> usize {
        lock_internal(&self.inner).queue.len()
    }

    fn disconnect_senders(&self) {
        let mut g = lock_internal(&self.inner);
        g.senders_gone = true;
        let wakes = g.recv_waiters.notify_all(DISCONNECTED);
        drop(g);
        wakes.wake();
    }

    fn disconnect_receivers(&self) {
        let mut g = lock_internal(&self.inner);
        g.receivers_gone = true;
        // Nobody will ever receive these: drop them now (outside the lock, their `Drop`
        // may do anything, even use this channel).
        let queued = std::mem::take(&mut g.queue);
        let mut orphans = Vec::new();
        let mut parked_senders = Vec::new();
        for offer in std::mem::take(&mut g.offers) {
            match offer.sender {
                // Its sender is parked; it takes the value back itself.
                Some(s) => {
                    parked_senders.push(Wake::notify_detached(s.clone(), DISCONNECTED));
                    g.offers.push_back(Offer {
                        value: offer.value,
                        sender: Some(s),
                    });
                }
                None => orphans.push(offer.value),
            }
        }
        let wakes = g.send_waiters.notify_all(DISCONNECTED);
        drop(g);
        wakes.wake();
        drop(parked_senders);
        drop(queued);
        drop(orphans);
    }
}

impl<T> Sender<T> {
    /// Sends a message, parking while a bounded channel is full (or, for a rendezvous
    /// channel, until a receiver takes it). Fails, giving the message back, if every
    /// receiver is gone.
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        match self.chan.send(msg, Block::Until(None)) {
            Ok(()) => Ok(()),
            Err(SendFail::Disconnected(v)) | Err(SendFail::Full(v)) => Err(SendError(v)),
        }
    }

    /// Sends a message if that is possible without waiting (for a rendezvous channel: if a
    /// receiver is parked waiting).
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        match self.chan.send(msg, Block::No) {
            Ok(()) => Ok(()),
            Err(SendFail::Full(v)) => Err(TrySendError::Full(v)),
            Err(SendFail::Disconnected(v)) => Err(TrySendError::Disconnected(v)),
        }
    }

    /// Like [`Sender::send`], but gives up after `timeout`.
    pub fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_until_opt(msg, deadline_after(timeout))
    }

    /// Like [`Sender::send`], but gives up at `deadline`.
    pub fn send_deadline(&self, msg: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.send_until_opt(msg, Some(deadline))
    }

    fn send_until_opt(&self, msg: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        match self.chan.send(msg, Block::Until(deadline)) {
            Ok(()) => Ok(()),
            Err(SendFail::Full(v)) => Err(SendTimeoutError::Timeout(v)),
            Err(SendFail::Disconnected(v)) => Err(SendTimeoutError::Disconnected(v)),
        }
    }

    /// Messages buffered in the channel (0 for a rendezvous channel).
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether no message is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a send would have to wait for room (always true for a rendezvous channel,
    /// never for an unbounded one).
    pub fn is_full(&self) -> bool {
        self.chan.cap.is_some_and(|c| self.len() >= c)
    }

    /// The capacity: `None` for an unbounded channel, `Some(0)` for a rendezvous one.
    pub fn capacity(&self) -> Option<usize> {
        self.chan.cap
    }

    /// Whether both senders belong to the same channel.
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Receiver<T> {
    /// Receives a message, parking while the channel is empty. Fails once the channel is
    /// empty and every sender is gone.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv(Block::Until(None)).map_err(|_| RecvError)
    }

    /// Receives a message if one is available right now.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.recv(Block::No).map_err(|e| match e {
            RecvFail::Empty => TryRecvError::Empty,
            RecvFail::Disconnected => TryRecvError::Disconnected,
        })
    }

    /// Like [`Receiver::recv`], but gives up after `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use lwp::channel::{unbounded, RecvTimeoutError};
    ///
    /// let (_tx, rx) = unbounded::<u8>();
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Timeout));
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_until_opt(deadline_after(timeout))
    }

    /// Like [`Receiver::recv`], but gives up at `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_until_opt(Some(deadline))
    }

    fn recv_until_opt(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        self.chan.recv(Block::Until(deadline)).map_err(|e| match e {
            RecvFail::Empty => RecvTimeoutError::Timeout,
            RecvFail::Disconnected => RecvTimeoutError::Disconnected,
        })
    }

    /// A blocking iterator: yields messages until the channel is empty and disconnected.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// A non-blocking iterator: yields the messages available right now.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Messages buffered in the channel (0 for a rendezvous channel).
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether no message is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the buffer is full (always true for a rendezvous channel, never for an
    /// unbounded one).
    pub fn is_full(&self) -> bool {
        self.chan.cap.is_some_and(|c| self.len() >= c)
    }

    /// The capacity: `None` for an unbounded channel, `Some(0)` for a rendezvous one.
    pub fn capacity(&self) -> Option<usize> {
        self.chan.cap
    }

    /// Whether both receivers belong to the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        // Relaxed: like `Arc::clone`; the count only matters when it reaches 0 (see field).
        self.chan.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // AcqRel: exactly one dropper sees 1 (RMWs are totally ordered); the flag it then sets
        // is published under the lock.
        if self.chan.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.chan.disconnect_senders();
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Receiver<T> {
        // Relaxed: as for `Sender::clone`.
        self.chan.receivers.fetch_add(1, Ordering::Relaxed);
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // AcqRel: as for `Sender::drop`.
        if self.chan.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.chan.disconnect_receivers();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Sender { .. }")
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Receiver { .. }")
    }
}

/// Blocking iterator over a [`Receiver`]'s messages (see [`Receiver::iter`]).
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// Non-blocking iterator over a [`Receiver`]'s available messages (see
/// [`Receiver::try_iter`]).
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// Owning blocking iterator over a [`Receiver`]'s messages.
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::waitqueue::test_hook;

    const SHORT: Duration = Duration::from_millis(1);

    #[test]
    fn a_message_arriving_during_the_receive_timeout_is_received() {
        for cap in [None, Some(1), Some(0)] {
            let (tx, rx) = Chan::pair(cap);
            // For the rendezvous channel, try_send succeeds only because this thread's
            // receiver is still listed as waiting: the offer is committed to it.
            test_hook::on_next_timeout(move || tx.try_send(5).unwrap());
            assert_eq!(rx.recv_timeout(SHORT), Ok(5), "cap {cap:?}");
        }
    }

    #[test]
    fn room_freed_during_the_send_timeout_is_used() {
        let (tx, rx) = bounded(1);
        tx.send(1).unwrap();
        let rx2 = rx.clone();
        test_hook::on_next_timeout(move || assert_eq!(rx2.try_recv(), Ok(1)));
        assert_eq!(tx.send_timeout(2, SHORT), Ok(()));
        assert_eq!(rx.try_recv(), Ok(2));
    }

    #[test]
    fn a_rendezvous_offer_taken_during_the_send_timeout_counts_as_sent() {
        let (tx, rx) = bounded(0);
        let rx2 = rx.clone();
        test_hook::on_next_timeout(move || assert_eq!(rx2.try_recv(), Ok(7)));
        assert_eq!(tx.send_timeout(7, SHORT), Ok(()));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }
}
