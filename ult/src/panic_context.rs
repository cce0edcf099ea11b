//! Names the ULT in panic messages. Rust's panic message names the kernel thread
//! (`thread 'lwp-1' panicked at ...`), which under M:N says little about which green thread
//! failed; this adds a line after it, `note: that panic was in ULT 'conn-42' (ULT #12)`, in
//! the style of std's own notes (after, because std's message opens with a blank line).
//!
//! Installed once per process, by the first kernel thread that prepares to run ULTs
//! ([`crate::raw::prepare_thread`]): a hook that calls the hook installed before it (std's
//! default, or the application's, so custom hooks keep working) and then, for panics inside
//! a ULT, prints the line. An application that sets its own hook later replaces this one, as
//! with any hook. Forced unwinds (a runtime cancelling a ULT) do not run hooks.

use std::sync::Once;

static INSTALLED: Once = Once::new();

/// Installs the hook (once per process; not while panicking, when std forbids it).
pub(crate) fn install() {
    if std::thread::panicking() {
        return;
    }
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            if let Some(ult) = crate::raw::current_header() {
                match ult.name() {
                    Some(name) => {
                        eprintln!("note: that panic was in ULT '{name}' (ULT #{})", ult.id())
                    }
                    None => eprintln!("note: that panic was in ULT #{} (unnamed)", ult.id()),
                }
            }
        }));
    });
}
