//! Stack-overflow detection for ULTs.
//!
//! A ULT that runs past the end of its stack touches the guard page below it (a guard marker
//! or a `PROT_NONE` page, see `stack`) and the kernel raises `SIGSEGV`. The handler installed
//! here runs on an alternate signal stack (the ULT's own stack is exhausted), checks whether
//! the faulting address lies in the guard
//! page of the ULT running on this thread, and if so writes
//! `thread '<name>' (ULT #<id>) has overflowed its stack (<N> KiB)` to stderr and aborts, as
//! std does for kernel threads. Any other fault is passed on to the handler that was installed
//! before ours (std's own overflow handler, or the default action), so we never hide a real
//! segfault.
//!
//! Invariants: the handler only does async-signal-safe work (one thread-local read, `write`,
//! `abort`, `sigaction`). Every kernel thread that resumes ULTs gets an alternate signal stack
//! before its first resume ([`ensure_signal_stack`]). The handler is installed (once per
//! process, [`install_handler`]) by `UltStack::new` before it maps a guard page, so no guard
//! page exists without it; spawning a ULT on a pooled stack does not look at it again.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Once;

use crate::raw;

static INSTALL: Once = Once::new();
static mut PREV_SEGV: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
static mut PREV_BUS: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();

const ALT_STACK_SIZE: usize = 64 * 1024;

/// Installs the SIGSEGV/SIGBUS handler once per process.
pub(crate) fn install_handler() {
    INSTALL.call_once(|| {
        // SAFETY: we fill a zeroed sigaction with a valid handler and flags and save the
        // previous action into statics that are written only here, once, before our handler
        // can run (it is installed by this very call).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(
                libc::SIGSEGV,
                &action,
                (&raw mut PREV_SEGV).cast::<libc::sigaction>(),
            );
            libc::sigaction(
                libc::SIGBUS,
                &action,
                (&raw mut PREV_BUS).cast::<libc::sigaction>(),
            );
        }
    });
}

thread_local! {
    static ALT_STACK_READY: Cell<bool> = const { Cell::new(false) };
}

struct AltStack {
    mapping: *mut libc::c_void,
    len: usize,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: disable the alternate stack before unmapping it; the mapping is ours.
        unsafe {
            let mut ss: libc::stack_t = std::mem::zeroed();
            ss.ss_flags = libc::SS_DISABLE;
            libc::sigaltstack(&ss, ptr::null_mut());
            libc::munmap(self.mapping, self.len);
        }
    }
}

thread_local! {
    static OWN_ALT_STACK: Cell<Option<AltStack>> = const { Cell::new(None) };
}

/// Makes sure the calling kernel thread has an alternate signal stack, so the overflow
/// handler can run when a ULT's stack is exhausted. Cheap after the first call per thread.
#[inline]
pub(crate) fn ensure_signal_stack() {
    if ALT_STACK_READY.with(|r| r.get()) {
        return;
    }
    setup_signal_stack();
    ALT_STACK_READY.with(|r| r.set(true));
}

#[cold]
fn setup_signal_stack() {
    // SAFETY: querying the current alternate stack writes into a local stack_t.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; a null new-stack pointer only queries.
    unsafe { libc::sigaltstack(ptr::null(), &mut current) };
    if current.ss_flags & libc::SS_DISABLE == 0 && current.ss_size >= libc::MINSIGSTKSZ {
        return; // std (or someone) already gave this thread one.
    }
    let len = ALT_STACK_SIZE;
    // SAFETY: a fresh anonymous mapping, owned by the thread-local below.
    let mapping = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mapping == libc::MAP_FAILED {
        return; // Overflow would then be reported by the default action only.
    }
    let ss = libc::stack_t {
        ss_sp: mapping,
        ss_flags: 0,
        ss_size: len,
    };
    // SAFETY: the mapping stays alive until the thread-local destructor disables it.
    unsafe { libc::sigaltstack(&ss, ptr::null_mut()) };
    OWN_ALT_STACK.with(|s| s.set(Some(AltStack { mapping, len })));
}

fn write_stderr(bytes: &[u8]) {
    // SAFETY: write(2) on fd 2 with a valid buffer; async-signal-safe.
    unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}

fn write_decimal(mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    write_stderr(&buf[i..]);
}

extern "C" fn handler(signum: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some((low, high, id, size, header)) = raw::current_guard() {
        if addr >= low && addr < high {
            // SAFETY: `header` is the running ULT's header (kept alive by its scheduler).
            let name = unsafe { (*header).name() };
            write_stderr(b"\nthread '");
            write_stderr(name.unwrap_or("<unnamed>").as_bytes());
            write_stderr(b"' (ULT #");
            write_decimal(id);
            write_stderr(b") has overflowed its stack (");
            write_decimal((size / 1024) as u64);
            write_stderr(b" KiB)\nfatal runtime error: stack overflow, aborting\n");
            // SAFETY: abort is async-signal-safe.
            unsafe { libc::abort() };
        }
    }
    // Not ours: hand the signal to whoever handled it before us.
    let saved: *const MaybeUninit<libc::sigaction> = if signum == libc::SIGBUS {
        &raw const PREV_BUS
    } else {
        &raw const PREV_SEGV
    };
    // SAFETY: PREV_* were written once in install_handler before this handler was installed.
    let prev = unsafe { (*saved).assume_init_ref() };
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // Restore the default action and return: the faulting instruction runs again and the
        // process dies with the signal, as it would have without us.
        // SAFETY: a zeroed sigaction with SIG_DFL is valid.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(signum, &dfl, ptr::null_mut());
        }
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(h) };
        f(signum, info, ctx);
    } else {
        // SAFETY: a plain handler takes only the signal number.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(signum);
    }
}
