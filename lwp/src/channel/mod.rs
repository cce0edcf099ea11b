//! Multi-producer multi-consumer channels whose blocking operations park the ULT, never its
//! kernel thread: [`unbounded`], [`bounded`] and rendezvous (`bounded(0)`), with the API of
//! `crossbeam-channel` (both [`Sender`] and [`Receiver`] are `Clone`), [`Select`] and
//! [`select!`](crate::select) to wait for whichever of several operations can proceed
//! first, and timer channels ([`after`], [`tick`], [`never()`]).
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
//! One short internal spin lock (`sync::spin`: held for a few queue operations, never across
//! a park and never while a user value is dropped) guards the whole channel state: the
//! message queue, the "all senders gone" / "all receivers gone" flags and two FIFO lists of
//! parked callers (receivers waiting for a message, senders waiting for room or, for a
//! rendezvous channel, for a receiver). Callers list themselves under the same lock that
//! guards the queue, so the no-lost-wake-up protocol of `sync::waitqueue` applies directly.
//!
//! Messages are **handed off**: a parked caller lists a token word and a message slot that
//! live in its own stack frame, and the other side completes the operation for it under the
//! lock. A sender that finds a parked receiver writes the message into the receiver's slot;
//! a receiver that frees a buffer slot moves the oldest parked sender's message into the
//! buffer (for a rendezvous channel: takes it straight from the sender's slot). The woken
//! caller finds its operation done and returns without taking the lock again. A parked ULT
//! is listed through a borrowed handle (`ult::raw::UnparkRef`), so a wait allocates nothing
//! and touches no reference count: the notifier marks the caller `PICKED` under the lock,
//! unparks it after unlocking, and only then stores its final token, and the caller does not
//! leave (or park again) before it sees that token. Invariants: receivers are listed only
//! while the buffer is empty, senders only while it is full (for rendezvous, always), so
//! FIFO order holds; a frame leaves its list, and waits out a notifier that picked it,
//! before it is left, also when it unwinds (a runtime destroying a parked ULT).
//!
//! The send and receive paths are inlined into their callers on purpose: a ULT that parks
//! at its own call depth keeps corosensei's `call`/`ret` pairs matched in the CPU's return
//! predictor (measured: channel round trip 107 -> 81 ns).
//!
//! - **Bounded / unbounded**: a `VecDeque<T>`; a bounded channel's queue never grows past its
//!   capacity, so after warming up it allocates nothing per message; an unbounded one grows
//!   its ring buffer geometrically. **Rendezvous** (`bounded(0)`) has no buffer: every
//!   message goes from a sender's slot to a receiver's.
//! - **Timeouts**: a waiter whose deadline passes settles under the lock. Still listed: it
//!   leaves and reports `Timeout`. Already picked: the notifier finished its operation first
//!   (the message is in its slot, or its message was taken), so it reports success.
//! - **Disconnection** (as std/crossbeam): when the last `Sender` goes, parked receivers
//!   wake and get `Disconnected` (they were parked, so nothing was left to drain). When the
//!   last `Receiver` goes, parked senders wake and get their message back in the error;
//!   queued messages are dropped at that point (outside the lock).
//!
//! Who may call what: any ULT or kernel thread may use any handle; handles are `Send` and
//! `Sync` when `T: Send`.

mod error;
mod select;
mod select_macro;
mod timer;

pub use error::{
    ReadyTimeoutError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryReadyError,
    TryRecvError, TrySendError,
};
pub use select::Select;
use select::Watch;
pub use timer::{after, never, tick};

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::spin::{SpinGuard, SpinLock};
use crate::sync::waitqueue::{deadline_after, WAITING};

/// Token (receivers): a sender put its message in your slot.
const HANDED: u32 = 1;
/// Token (senders): a receiver took your message (or moved it into the freed buffer slot).
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

/// Token of a caller picked by a notifier that has not finished with it yet: the caller must
/// neither park nor leave until the final token replaces it (see `Parked::notify`).
const PICKED: u32 = u32::MAX;

/// How to wake a parked caller: a ULT through a borrowed handle (no reference count), a
/// plain kernel thread through its owned handle.
enum Who {
    Ult(ult::raw::UnparkRef),
    Thread(ult::Unparker),
}

impl Who {
    /// The caller's handle.
    #[inline]
    fn current() -> Who {
        match ult::raw::UnparkRef::current() {
            Some(r) => Who::Ult(r),
            None => Who::Thread(ult::unparker()),
        }
    }
}

/// A parked sender or receiver: whom to wake, and two words in its stack frame: its token
/// (`WAITING` until a notifier picks it) and its slot. A receiver's slot starts empty and a
/// sender fills it; a sender's slot holds its message until a receiver takes it.
struct Parked<T> {
    who: Who,
    token: *const AtomicU32,
    slot: *mut Option<T>,
}

// SAFETY: `token` and `slot` point into the frame of a caller that is listed (parked, or
// about to park) in this channel, or picked by a notifier that has not stored its final
// token yet. The slot is used only under the channel's lock while the entry is listed; the
// token is written under the lock (`PICKED`) and once more by the notifier (the final token,
// its last access to the frame and to the caller). The caller leaves its frame only after
// it has been unlisted and, if picked, has seen its final token (`park_listed`, and `Unlist`
// for a frame that unwinds). So the pointees, and the ULT behind a borrowed `UnparkRef`, are
// alive whenever they are used; moving an entry to another thread only moves a `T` between
// threads, which `T: Send` allows.
unsafe impl<T: Send> Send for Parked<T> {}

impl<T> Parked<T> {
    /// Notifier side, under the lock (after whatever was done to the slot): marks the caller
    /// picked. Finish with [`Picked::wake`] after unlocking.
    #[inline]
    fn notify(self, token: u32) -> Picked {
        // SAFETY: the entry was listed until the caller popped it under the lock, so the frame
        // is alive (see above). Relaxed: `PICKED` only keeps the caller waiting; what it must
        // see comes with the final token (release).
        unsafe { (*self.token).store(PICKED, Ordering::Relaxed) };
        Picked {
            who: self.who,
            token: self.token,
            value: token,
        }
    }
}

/// A caller picked under the lock, to wake after unlocking.
#[must_use = "a picked caller waits until `wake` gives it its token"]
struct Picked {
    who: Who,
    token: *const AtomicU32,
    value: u32,
}

impl Picked {
    /// Unparks the caller, then gives it its final token. In this order: the caller cannot
    /// leave (and its ULT cannot finish) before the token changes, so the borrowed handle is
    /// valid during `unpark`; and a caller that sees the final token needs no more unparking.
    /// A caller that woke early sees `PICKED` and waits without parking, so this unpark is
    /// never lost.
    #[inline]
    fn wake(self) {
        match self.who {
            // SAFETY: the caller is stuck until the token store below (see above).
            Who::Ult(r) => unsafe { r.unpark() },
            Who::Thread(u) => u.unpark(),
        }
        // SAFETY: the frame is alive until the caller sees this store (see `Parked`).
        // Release: the slot written under the lock is visible to the caller's acquire load.
        unsafe { (*self.token).store(self.value, Ordering::Release) };
    }
}

/// Waits for a picked caller's final token. The notifier is between unlocking and `wake` on
/// another kernel thread (a notifier on this one cannot be interrupted there), so this is
/// short unless the kernel preempted it: a ULT yields meanwhile so its LWP runs others,
/// except while unwinding (`unwinding`), where it must not switch.
#[cold]
fn await_final(token: &AtomicU32, unwinding: bool) -> u32 {
    loop {
        // Acquire: pairs with the release store in `Picked::wake`.
        let t = token.load(Ordering::Acquire);
        if t != PICKED && t != WAITING {
            return t;
        }
        std::hint::spin_loop();
        if unwinding {
            std::thread::yield_now();
        } else {
            ult::yield_now();
        }
    }
}

struct Inner<T> {
    /// Buffered messages (bounded and unbounded channels; always empty for rendezvous).
    queue: VecDeque<T>,
    senders_gone: bool,
    receivers_gone: bool,
    /// Parked receivers, oldest first. Listed only while `queue` is empty and no sender is
    /// parked: a sender that finds one hands its message over instead of queueing it.
    recv_waiters: VecDeque<Parked<T>>,
    /// Parked senders, oldest first. Listed only while `queue` is full (for rendezvous:
    /// always) and no receiver is parked: a receiver that frees a slot moves the oldest
    /// parked sender's message into it (rendezvous: takes it directly).
    send_waiters: VecDeque<Parked<T>>,
    /// [`Select`]s waiting for a receive (a message, a parked sender, or all senders gone),
    /// and for a send (room, a parked receiver, or all receivers gone) to become possible.
    /// Fired, and emptied, by whatever makes that happen; see `select.rs`.
    recv_watchers: Vec<Arc<Watch>>,
    send_watchers: Vec<Arc<Watch>>,
}

struct Chan<T> {
    inner: SpinLock<Inner<T>>,
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
    #[inline]
    fn expired(self) -> bool {
        match self {
            Block::No => true,
            Block::Until(None) => false,
            Block::Until(Some(d)) => Instant::now() >= d,
        }
    }

    #[inline]
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

/// Which list a parked caller is in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Send,
    Recv,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Send => Side::Recv,
            Side::Recv => Side::Send,
        }
    }
}

impl<T> Inner<T> {
    /// The watchers of `side` to fire after unlocking (empty, without allocating, if none).
    #[inline]
    fn take_watchers(&mut self, side: Side) -> Vec<Arc<Watch>> {
        let list = match side {
            Side::Send => &mut self.send_watchers,
            Side::Recv => &mut self.recv_watchers,
        };
        if list.is_empty() {
            Vec::new()
        } else {
            std::mem::take(list)
        }
    }

    /// Whether a [`Select`] watches `side`.
    #[inline(always)]
    fn has_watchers(&self, side: Side) -> bool {
        match side {
            Side::Send => !self.send_watchers.is_empty(),
            Side::Recv => !self.recv_watchers.is_empty(),
        }
    }

    /// Whether an operation of `side` would complete (or fail) without waiting.
    fn is_ready(&self, side: Side, cap: Option<usize>) -> bool {
        match side {
            Side::Recv => {
                !self.queue.is_empty() || !self.send_waiters.is_empty() || self.senders_gone
            }
            Side::Send => {
                self.receivers_gone
                    || !self.recv_waiters.is_empty()
                    || cap.is_none_or(|c| self.queue.len() < c)
            }
        }
    }

    fn list(&mut self, side: Side) -> &mut VecDeque<Parked<T>> {
        match side {
            Side::Send => &mut self.send_waiters,
            Side::Recv => &mut self.recv_waiters,
        }
    }

    /// Takes the caller whose token is `token` out of `side`'s list if it is still there;
    /// false if a notifier took it.
    fn unlist(&mut self, side: Side, token: &AtomicU32) -> bool {
        let list = self.list(side);
        match list.iter().position(|p| std::ptr::eq(p.token, token)) {
            Some(i) => {
                list.remove(i);
                true
            }
            None => false,
        }
    }

    /// Gives every parked caller of `side` the `DISCONNECTED` token; unpark them by dropping
    /// the result after unlocking.
    fn disconnect_all(&mut self, side: Side) -> Vec<Picked> {
        self.list(side)
            .drain(..)
            .map(|p| p.notify(DISCONNECTED))
            .collect()
    }
}

/// Unlists a parked caller whose frame unwinds while it is still listed (a runtime
/// cancelling a parked ULT at shutdown), so that no list keeps a pointer into a dead frame.
/// Disarmed on every normal exit.
struct Unlist<'a, T> {
    chan: &'a Chan<T>,
    token: &'a AtomicU32,
    side: Side,
    armed: bool,
}

impl<T> Drop for Unlist<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.armed {
            let listed = self.chan.inner.lock().unlist(self.side, self.token);
            if !listed {
                // Picked: the notifier still writes the token into this frame.
                await_final(self.token, true);
            }
        }
    }
}

impl<T> Chan<T> {
    fn pair(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
        let queue = match cap {
            Some(c) => VecDeque::with_capacity(c.min(PREALLOC_LIMIT)),
            None => VecDeque::new(),
        };
        let chan = Arc::new(Chan {
            inner: SpinLock::new(Inner {
                queue,
                senders_gone: false,
                receivers_gone: false,
                recv_waiters: VecDeque::new(),
                send_waiters: VecDeque::new(),
                recv_watchers: Vec::new(),
                send_watchers: Vec::new(),
            }),
            cap,
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
        });
        (Sender { chan: chan.clone() }, Receiver { chan })
    }

    /// Parks the caller, listed in `side` with `slot` (the lock `g` is held and released
    /// here), until a notifier gives it a token or `block`'s deadline passes. Returns the
    /// token, or `None` if the caller timed out and left the list (nobody touched its slot).
    ///
    /// The token lives in this frame, not in a shared allocation, and a ULT is listed by a
    /// borrowed handle: nothing but the lock is shared.
    #[inline(always)]
    fn park_listed(
        &self,
        mut g: SpinGuard<'_, Inner<T>>,
        side: Side,
        slot: *mut Option<T>,
        block: Block,
    ) -> Option<u32> {
        let token = AtomicU32::new(WAITING);
        g.list(side).push_back(Parked {
            who: Who::current(),
            token: &token,
            slot,
        });
        // A parked caller makes the other side's operation possible (for a rendezvous
        // channel, the only way it becomes possible).
        if g.has_watchers(side.other()) {
            select::fire_after_unlock(g, side.other());
        } else {
            drop(g);
        }
        let mut unlist = Unlist {
            chan: self,
            token: &token,
            side,
            armed: true,
        };
        let deadline = block.deadline();
        let result = loop {
            // Acquire: pairs with the notifier's release store (`Picked::wake`).
            let t = token.load(Ordering::Acquire);
            if t == PICKED {
                break Some(await_final(&token, false));
            }
            if t != WAITING {
                break Some(t);
            }
            match deadline {
                None => ult::park(),
                Some(d) if Instant::now() < d => ult::park_deadline(d),
                Some(_) => {
                    #[cfg(test)]
                    crate::sync::waitqueue::test_hook::fire();
                    // Timed out: settle under the lock (step 4 of the waitqueue protocol).
                    // Still listed: leave. Otherwise a notifier picked us first; its token
                    // stands.
                    let listed = self.inner.lock().unlist(side, &token);
                    if listed {
                        break None;
                    }
                    break Some(await_final(&token, false));
                }
            }
        };
        unlist.armed = false;
        result
    }

    #[inline(always)]
    fn send(&self, value: T, block: Block) -> Result<(), SendFail<T>> {
        let mut g = self.inner.lock();
        if g.receivers_gone {
            drop(g);
            return Err(SendFail::Disconnected(value));
        }
        if let Some(receiver) = g.recv_waiters.pop_front() {
            // SAFETY: a listed receiver's slot is alive and ours to fill under the lock (see
            // `Parked`); the token set next tells it the slot is full.
            unsafe { *receiver.slot = Some(value) };
            let picked = receiver.notify(HANDED);
            drop(g);
            picked.wake(); // after unlocking
            return Ok(());
        }
        let has_room = match self.cap {
            Some(c) => g.queue.len() < c,
            None => true,
        };
        if has_room {
            g.queue.push_back(value);
            if g.has_watchers(Side::Recv) {
                select::fire_after_unlock(g, Side::Recv);
            }
            return Ok(());
        }
        if block.expired() {
            drop(g);
            return Err(SendFail::Full(value));
        }
        let mut slot = Some(value);
        let token = self.park_listed(g, Side::Send, &raw mut slot, block);
        match token {
            Some(TAKEN) => Ok(()),
            // Still ours: a receiver never touches a slot after the token is set, and a
            // disconnection or a timeout leaves the message where it was.
            Some(_) => Err(SendFail::Disconnected(slot.take().expect("message kept"))),
            None => Err(SendFail::Full(slot.take().expect("message kept"))),
        }
    }

    #[inline(always)]
    fn recv(&self, block: Block) -> Result<T, RecvFail> {
        let mut g = self.inner.lock();
        if let Some(value) = g.queue.pop_front() {
            // A slot just freed: the oldest parked sender's message moves in behind the
            // others (so FIFO order holds) and that sender returns.
            let wake = match g.send_waiters.pop_front() {
                Some(sender) => {
                    // SAFETY: a listed sender's slot is alive and holds its message; ours to
                    // take under the lock (see `Parked`).
                    let msg = unsafe { (*sender.slot).take() };
                    g.queue.extend(msg);
                    Some(sender.notify(TAKEN))
                }
                None => None,
            };
            match wake {
                Some(picked) => {
                    drop(g);
                    picked.wake();
                }
                // A slot is free now: a send has become possible.
                None if g.has_watchers(Side::Send) => select::fire_after_unlock(g, Side::Send),
                None => drop(g),
            }
            return Ok(value);
        }
        if let Some(sender) = g.send_waiters.pop_front() {
            // Rendezvous (the only case with parked senders and an empty queue): take the
            // message straight from the sender.
            // SAFETY: as above.
            let msg = unsafe { (*sender.slot).take() };
            let picked = sender.notify(TAKEN);
            drop(g);
            picked.wake();
            return msg.ok_or(RecvFail::Empty);
        }
        if g.senders_gone {
            return Err(RecvFail::Disconnected);
        }
        if block.expired() {
            return Err(RecvFail::Empty);
        }
        let mut slot = None;
        match self.park_listed(g, Side::Recv, &raw mut slot, block) {
            Some(HANDED) => Ok(slot.take().expect("a handed message is in the slot")),
            Some(_) => Err(RecvFail::Disconnected),
            None => Err(RecvFail::Empty),
        }
    }

    fn len(&self) -> usize {
        self.inner.lock().queue.len()
    }

    fn disconnect_senders(&self) {
        let mut g = self.inner.lock();
        g.senders_gone = true;
        // Parked receivers exist only while the queue is empty: nothing is left for them.
        let wakes = g.disconnect_all(Side::Recv);
        let watchers = g.take_watchers(Side::Recv);
        drop(g);
        wakes.into_iter().for_each(Picked::wake);
        select::fire(watchers);
    }

    fn disconnect_receivers(&self) {
        let mut g = self.inner.lock();
        g.receivers_gone = true;
        // Nobody will ever receive these: drop them now, outside the lock (their `Drop` may
        // do anything, even use this channel). Parked senders take their messages back.
        let queued = std::mem::take(&mut g.queue);
        let wakes = g.disconnect_all(Side::Send);
        let watchers = g.take_watchers(Side::Send);
        drop(g);
        wakes.into_iter().for_each(Picked::wake);
        select::fire(watchers);
        drop(queued);
    }
}

impl<T> Sender<T> {
    /// Sends a message, parking while a bounded channel is full (or, for a rendezvous
    /// channel, until a receiver takes it). Fails, giving the message back, if every
    /// receiver is gone.
    #[inline]
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
    #[inline]
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
    #[inline]
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
    #[inline]
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
