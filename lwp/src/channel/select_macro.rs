//! [`select!`](crate::select): a `crossbeam_channel::select!`-like macro over
//! [`Select`](super::Select), which waits for whichever of several receives and sends can
//! complete first, with an optional `default` arm (do not wait, or wait at most so long).
//!
//! How it expands: the arms are collected one at a time, each step binding the arm's channel
//! and its result slot (and a send's value) to names of its own (macro hygiene keeps the
//! steps' names apart); then one loop waits with `ready`, `try_ready` or `ready_deadline` and
//! completes the chosen operation with `try_recv`/`try_send`. An operation that another
//! party took first (empty again, or full again) makes it wait again. The arms' bodies run
//! after the loop, so `break`, `continue` and `return` in a body act on the caller's code. A
//! send arm's value is moved into the channel only if that send completes; otherwise it is
//! dropped with the macro's locals.
//!
//! Who may call what: anyone, ULTs or plain threads (as `Select`).

/// Waits until one of several channel operations completes and runs that operation's arm,
/// like `crossbeam_channel::select!`; a ULT parks, a plain thread blocks.
///
/// Arms, separated by commas, in any number (a `default` arm, if any, last):
/// - `recv(receiver) -> result => body`: `result` binds a `Result<T, RecvError>` (`Err` once
///   the channel is empty and every sender is gone);
/// - `send(sender, value) -> result => body`: `result` binds a `Result<(), SendError<T>>`
///   (`Err`, with the value back, once every receiver is gone);
/// - `default => body`: runs if no operation can complete now (then the select never waits);
/// - `default(timeout) => body`: runs if none completes within `timeout` (a `Duration`).
///
/// `result` is a pattern that always matches (a name, or `_`). All bodies have one type,
/// the macro's value. When several operations are ready, one is picked at random.
///
/// ```
/// use std::time::Duration;
/// use lwp::channel::{bounded, unbounded};
///
/// ult::run(|| {
///     let (jobs_tx, jobs) = unbounded::<u32>();
///     let (_quit_tx, quit) = bounded::<()>(1);
///     let (done_tx, done) = bounded::<u32>(1);
///     ult::spawn(move || jobs_tx.send(7).unwrap());
///     let job = lwp::select! {
///         recv(jobs) -> job => job.expect("a sender is left"),
///         recv(quit) -> _ => 0,
///         default(Duration::from_secs(5)) => panic!("no job within 5 s"),
///     };
///     let sent = lwp::select! {
///         send(done_tx, job * 6) -> res => res.is_ok(),
///         default => false,
///     };
///     assert!(sent);
///     assert_eq!(done.recv(), Ok(42));
/// });
/// ```
#[macro_export]
macro_rules! select {
    ($($arms:tt)+) => {
        $crate::__select_collect!([] $($arms)+)
    };
}

/// Collects [`select!`](crate::select)'s arms (not for direct use).
#[doc(hidden)]
#[macro_export]
macro_rules! __select_collect {
    ([$($ops:tt)*] recv($r:expr) -> $res:pat => $body:expr $(, $($rest:tt)*)?) => {{
        let chan = &$r;
        #[allow(unused_mut)]
        let mut slot = ::core::option::Option::None;
        $crate::__select_collect!([$($ops)* (recv chan slot [$res] [$body])] $($($rest)*)?)
    }};
    ([$($ops:tt)*] send($s:expr, $v:expr) -> $res:pat => $body:expr $(, $($rest:tt)*)?) => {{
        let chan = &$s;
        #[allow(unused_mut)]
        let mut slot = ::core::option::Option::None;
        let mut value = ::core::option::Option::Some($v);
        $crate::__select_collect!(
            [$($ops)* (send chan slot [$res] [$body] value)] $($($rest)*)?
        )
    }};
    ([$($ops:tt)*] default($t:expr) => $body:expr $(,)?) => {
        $crate::__select_run!([$($ops)*] (timeout [$t] [$body]))
    };
    ([$($ops:tt)*] default => $body:expr $(,)?) => {
        $crate::__select_run!([$($ops)*] (now [$body]))
    };
    ([$($ops:tt)*]) => {
        $crate::__select_run!([$($ops)*] (forever))
    };
}

/// Expands [`select!`](crate::select) once its arms are collected (not for direct use).
#[doc(hidden)]
#[macro_export]
macro_rules! __select_run {
    ([$($op:tt)*] $default:tt) => {{
        let mut sel = $crate::channel::Select::new();
        $crate::__select_register!(sel $($op)*);
        let deadline = $crate::__select_deadline!($default);
        let mut timed_out = false;
        loop {
            let ready: ::core::option::Option<usize> =
                $crate::__select_wait!(sel deadline $default);
            let ::core::option::Option::Some(index) = ready else {
                timed_out = true;
                break;
            };
            if $crate::__select_try!(index [0usize] $($op)*) {
                break;
            }
        }
        $crate::__select_bodies!(timed_out $default $($op)*)
    }};
}

/// Adds each collected operation to the `Select`, in order (not for direct use).
#[doc(hidden)]
#[macro_export]
macro_rules! __select_register {
    ($sel:ident) => {};
    ($sel:ident (recv $chan:ident $slot:ident [$($res:tt)*] [$($body:tt)*]) $($rest:tt)*) => {
        $sel.recv($chan);
        $crate::__select_register!($sel $($rest)*);
    };
    ($sel:ident (send $chan:ident $slot:ident [$($res:tt)*] [$($body:tt)*] $value:ident) $($rest:tt)*) => {
        $sel.send($chan);
        $crate::__select_register!($sel $($rest)*);
    };
}

/// The deadline of a `default(timeout)` arm, computed once (not for direct use).
#[doc(hidden)]
#[macro_export]
macro_rules! __select_deadline {
    ((timeout [$t:expr] [$($body:tt)*])) => {
        ::std::time::Instant::now().checked_add($t)
    };
    ($other:tt) => {
        ::core::option::Option::<::std::time::Instant>::None
    };
}

/// Waits for a ready operation's index; `None` for the `default` arm (not for direct use).
#[doc(hidden)]
#[macro_export]
macro_rules! __select_wait {
    ($sel:ident $deadline:ident (forever)) => {
        ::core::option::Option::Some($sel.ready())
    };
    ($sel:ident $deadline:ident (now [$($body:tt)*])) => {
        $sel.try_ready().ok()
    };
    ($sel:ident $deadline:ident (timeout [$t:expr] [$($body:tt)*])) => {
        match $deadline {
            ::core::option::Option::Some(d) => $sel.ready_deadline(d).ok(),
            // Later than any `Instant`: no timeout.
            ::core::option::Option::None => ::core::option::Option::Some($sel.ready()),
        }
    };
}

/// Completes the operation `index` if it can complete now; whether it did (not for direct
/// use).
#[doc(hidden)]
#[macro_export]
macro_rules! __select_try {
    ($index:ident [$n:expr]) => {
        false
    };
    ($index:ident [$n:expr] (recv $chan:ident $slot:ident [$($res:tt)*] [$($body:tt)*]) $($rest:tt)*) => {
        if $index == $n {
            match $chan.try_recv() {
                ::core::result::Result::Ok(v) => {
                    $slot = ::core::option::Option::Some(::core::result::Result::Ok(v));
                    true
                }
                ::core::result::Result::Err($crate::channel::TryRecvError::Disconnected) => {
                    $slot = ::core::option::Option::Some(::core::result::Result::Err(
                        $crate::channel::RecvError,
                    ));
                    true
                }
                ::core::result::Result::Err($crate::channel::TryRecvError::Empty) => false,
            }
        } else {
            $crate::__select_try!($index [$n + 1usize] $($rest)*)
        }
    };
    ($index:ident [$n:expr] (send $chan:ident $slot:ident [$($res:tt)*] [$($body:tt)*] $value:ident) $($rest:tt)*) => {
        if $index == $n {
            match $value.take() {
                ::core::option::Option::Some(v) => match $chan.try_send(v) {
                    ::core::result::Result::Ok(()) => {
                        $slot = ::core::option::Option::Some(::core::result::Result::Ok(()));
                        true
                    }
                    ::core::result::Result::Err($crate::channel::TrySendError::Disconnected(
                        v,
                    )) => {
                        $slot = ::core::option::Option::Some(::core::result::Result::Err(
                            $crate::channel::SendError(v),
                        ));
                        true
                    }
                    ::core::result::Result::Err($crate::channel::TrySendError::Full(v)) => {
                        $value = ::core::option::Option::Some(v);
                        false
                    }
                },
                ::core::option::Option::None => false,
            }
        } else {
            $crate::__select_try!($index [$n + 1usize] $($rest)*)
        }
    };
}

/// Runs the body of the arm whose operation completed, or the `default` body (not for
/// direct use).
#[doc(hidden)]
#[macro_export]
macro_rules! __select_bodies {
    ($timed_out:ident (forever)) => {
        unreachable!("select!: the loop ends only when an operation completed")
    };
    ($timed_out:ident (now [$($body:tt)*])) => {
        $($body)*
    };
    ($timed_out:ident (timeout [$t:expr] [$($body:tt)*])) => {
        $($body)*
    };
    ($timed_out:ident $default:tt (recv $chan:ident $slot:ident [$res:pat] [$body:expr]) $($rest:tt)*) => {
        if let (false, ::core::option::Option::Some($res)) = ($timed_out, $slot) {
            $body
        } else {
            $crate::__select_bodies!($timed_out $default $($rest)*)
        }
    };
    ($timed_out:ident $default:tt (send $chan:ident $slot:ident [$res:pat] [$body:expr] $value:ident) $($rest:tt)*) => {
        if let (false, ::core::option::Option::Some($res)) = ($timed_out, $slot) {
            $body
        } else {
            $crate::__select_bodies!($timed_out $default $($rest)*)
        }
    };
}
