//! ULT-local storage: the safe replacement for `thread_local!` inside green threads.
//!
//! A `thread_local!` seen from a ULT belongs to whichever kernel thread runs the ULT at that
//! moment, so it is shared with other ULTs on that thread and, if the ULT migrates, changes
//! under its feet. A [`LocalKey`] declared with [`crate::local!`] instead gives each ULT its own
//! value, created on first use and dropped inside the ULT when it finishes. Used from a plain
//! kernel thread it behaves like a thread-local of that thread, so code can run in both worlds.
//!
//! Values are boxed in a small per-ULT vector keyed by the static's address; lookups are a
//! linear scan, which beats hashing for the handful of locals a ULT typically has. A value is
//! never moved or removed while its ULT lives, so references handed to `with` stay valid even
//! if the closure touches other locals.

use std::any::Any;
use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;

use crate::raw;

/// The per-ULT (or per-kernel-thread) table of local values.
#[derive(Default)]
pub(crate) struct LocalMap {
    /// (key address, the boxed value, the same value's address). The address saves a
    /// type check per lookup: a key's static has exactly one value type.
    entries: ManuallyDrop<Vec<Entry>>,
}

/// One local value: see [`LocalMap::entries`].
type Entry = (usize, Box<dyn Any>, *const ());

impl Drop for LocalMap {
    /// Most ULTs never use a local, and a finished one's map was emptied inside it: skip the
    /// `Vec` drop for a map that never allocated. That drop is kept out of line, so that
    /// this test is all the map's drop glue holds and the glue inlines into the header's:
    /// with the `Vec` drop inline the glue was a function of its own, which saved six
    /// registers before the test (pooled spawn+join 496.6 -> 475.6 instructions, `PASSES=3
    /// A=10000 scripts/count-instructions.sh spawnjoin`).
    #[inline]
    fn drop(&mut self) {
        if self.entries.capacity() != 0 {
            // SAFETY: `drop` runs once, and the map is not used after it.
            unsafe { self.drop_entries() };
        }
    }
}

impl LocalMap {
    /// The part of `drop` for a map that allocated: drops the entries and their storage.
    ///
    /// # Safety
    /// At most once per map, and the map must not be used afterwards (only its `drop`
    /// calls it).
    #[cold]
    #[inline(never)]
    unsafe fn drop_entries(&mut self) {
        // SAFETY: the caller's contract: the entries are dropped once and never used again.
        unsafe { ManuallyDrop::drop(&mut self.entries) };
    }

    pub(crate) const fn new() -> LocalMap {
        LocalMap {
            entries: ManuallyDrop::new(Vec::new()),
        }
    }

    /// Whether no local was ever initialised here (then there is nothing to destroy).
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

thread_local! {
    static THREAD_LOCALS: UnsafeCell<LocalMap> = const { UnsafeCell::new(LocalMap::new()) };
}

/// A key for ULT-local storage; declare it with [`crate::local!`].
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> LocalKey<T> {
        LocalKey { init }
    }

    /// Calls `f` with the caller's value, initialising it first if needed.
    ///
    /// ```
    /// use std::cell::Cell;
    /// ult::local! { static COUNT: Cell<u32> = Cell::new(0); }
    /// ult::run(|| {
    ///     COUNT.with(|c| c.set(c.get() + 1));
    ///     let h = ult::spawn(|| COUNT.with(|c| c.get())); // another ULT, another value
    ///     assert_eq!(h.join().unwrap(), 0);
    ///     assert_eq!(COUNT.with(|c| c.get()), 1);
    /// });
    /// ```
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let value = self.get_or_init();
        // SAFETY: values are boxed and never removed while their owner (this ULT or thread)
        // lives, and we are running inside that owner, so the pointee outlives `f`.
        f(unsafe { &*value })
    }

    fn key(&'static self) -> usize {
        self as *const LocalKey<T> as usize
    }

    fn get_or_init(&'static self) -> *const T {
        let map = match raw::current_header() {
            Some(h) => h.locals.get(),
            None => THREAD_LOCALS.with(|m| m.get()),
        };
        let key = self.key();
        if let Some(p) = lookup::<T>(map, key) {
            return p;
        }
        // Initialise without holding any borrow of the map: `init` may use other locals.
        let value: Box<dyn Any> = Box::new((self.init)());
        if let Some(p) = lookup::<T>(map, key) {
            return p; // `init` itself initialised this key; keep the first value.
        }
        // SAFETY: the map belongs to the running ULT or this thread and nothing else holds a
        // reference into the Vec itself (only into the boxes, which do not move).
        let entries = unsafe { &mut (*map).entries };
        let ptr = value
            .downcast_ref::<T>()
            .expect("a LocalKey<T> always stores a T") as *const T;
        entries.push((key, value, ptr as *const ()));
        ptr
    }
}

fn lookup<T: 'static>(map: *mut LocalMap, key: usize) -> Option<*const T> {
    // SAFETY: as in `get_or_init`: exclusive to the running owner, no outstanding &mut.
    let entries = unsafe { &(*map).entries };
    // The value behind `key` was created by `LocalKey<T>::get_or_init` for this very key, so
    // it is a `T` (checked once, when it was stored).
    entries
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, _, p)| *p as *const T)
}

/// Declares ULT-local statics, like `thread_local!`.
///
/// ```
/// use std::cell::RefCell;
/// ult::local! {
///     /// Per-ULT scratch buffer.
///     static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::new());
/// }
/// SCRATCH.with(|s| s.borrow_mut().push(1));
/// ```
#[macro_export]
macro_rules! local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident : $t:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])*
        $vis static $name: $crate::LocalKey<$t> = $crate::LocalKey::new({
            fn __ult_local_init() -> $t {
                $init
            }
            __ult_local_init
        });
        $crate::local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident : $t:ty = $init:expr) => {
        $crate::local!($(#[$attr])* $vis static $name: $t = $init;);
    };
}
