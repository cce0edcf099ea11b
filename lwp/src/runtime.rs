//! The public face of the runtime: the three threading models behind one std-like API.
//!
//! A [`Runtime`] is built for one [`Model`]:
//! - [`Model::ManyToOne`]: every ULT on one LWP (pure user-level threads; a blocking call
//!   stalls them all),
//! - [`Model::OneToOne`]: a kernel thread per ULT,
//! - [`Model::ManyToMany`]: ULTs multiplexed on `lwps` LWPs with work stealing and sysmon
//!   (the default, with one LWP per available core).
//!
//! Spawning goes to the runtime of the calling ULT ([`spawn`], [`Builder::spawn`]), or,
//! outside any ULT, to a lazily started default many-to-many runtime, so quick programs need
//! no setup. [`Runtime::run`] runs a closure as the first ULT and returns its result.
//!
//! Dropping a runtime stops its LWPs after their current ULT switches out, destroys the
//! ULTs still queued (running their destructors on their home LWP) and joins every kernel
//! thread it started. Under one-to-one, parked ULTs are destroyed too. Under many-to-one and
//! many-to-many, a ULT that is parked when the runtime goes away (waiting on a channel nobody
//! will send to, say) is not unwound: its stack stays mapped, like a thread left blocked at
//! process exit.

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ult::raw::Schedule;
use ult::JoinHandle;

use crate::metrics::{MetricsSnapshot, Timeline};
use crate::one_to_one::OneToOne;
use crate::scheduler::{Config, Shared};

/// The threading model of a runtime (the lecture's three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// All ULTs on one kernel thread.
    ManyToOne,
    /// One kernel thread per ULT.
    OneToOne,
    /// ULTs multiplexed on `lwps` kernel threads.
    ManyToMany {
        /// Number of LWPs (kernel threads) to start with.
        lwps: usize,
    },
}

impl Model {
    /// Many-to-many with one LWP per available core.
    pub fn default_many_to_many() -> Model {
        Model::ManyToMany {
            lwps: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// A short name: `many-to-one`, `one-to-one` or `many-to-many`.
    pub fn name(&self) -> &'static str {
        match self {
            Model::ManyToOne => "many-to-one",
            Model::OneToOne => "one-to-one",
            Model::ManyToMany { .. } => "many-to-many",
        }
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Model::ManyToMany { lwps } => write!(f, "many-to-many ({lwps} LWPs)"),
            other => f.write_str(other.name()),
        }
    }
}

impl Default for Model {
    fn default() -> Model {
        Model::default_many_to_many()
    }
}

/// Configures a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    model: Model,
    pin: bool,
    sysmon: Option<Duration>,
    sysmon_warnings: bool,
    timeline: bool,
    name: String,
    max_lwps: Option<usize>,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            model: Model::default(),
            pin: false,
            sysmon: Some(crate::sysmon::DEFAULT_THRESHOLD),
            sysmon_warnings: true,
            timeline: false,
            name: "lwp".into(),
            max_lwps: None,
        }
    }
}

impl RuntimeBuilder {
    /// Default settings: many-to-many, one LWP per core, sysmon at 10 ms, no pinning.
    pub fn new() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The threading model.
    pub fn model(mut self, model: Model) -> RuntimeBuilder {
        self.model = model;
        self
    }

    /// Many-to-many with `n` LWPs (many-to-one if `n` is 1 is *not* implied: a 1-LWP
    /// many-to-many runtime still has sysmon add LWPs when it blocks).
    pub fn lwps(mut self, n: usize) -> RuntimeBuilder {
        self.model = Model::ManyToMany { lwps: n };
        self
    }

    /// Pins LWP `i` to core `i mod cores` (many-to-one and many-to-many).
    pub fn pin(mut self, pin: bool) -> RuntimeBuilder {
        self.pin = pin;
        self
    }

    /// How long an LWP may stay inside one ULT run before sysmon acts (default 10 ms).
    pub fn sysmon_threshold(mut self, threshold: Duration) -> RuntimeBuilder {
        self.sysmon = Some(threshold);
        self
    }

    /// Runs without sysmon.
    pub fn disable_sysmon(mut self) -> RuntimeBuilder {
        self.sysmon = None;
        self
    }

    /// Whether sysmon prints warnings (process-wide; default on, or off with
    /// `LWP_SYSMON_QUIET=1`).
    pub fn sysmon_warnings(mut self, on: bool) -> RuntimeBuilder {
        self.sysmon_warnings = on;
        self
    }

    /// Records each LWP's busy intervals, for [`Runtime::timeline`] and the TLP histogram.
    pub fn timeline(mut self, on: bool) -> RuntimeBuilder {
        self.timeline = on;
        self
    }

    /// Prefix of the kernel threads' names (default `lwp`).
    pub fn name(mut self, name: impl Into<String>) -> RuntimeBuilder {
        self.name = name.into();
        self
    }

    /// Upper bound on LWPs including those sysmon adds (default: twice the initial count
    /// plus 4).
    pub fn max_lwps(mut self, n: usize) -> RuntimeBuilder {
        self.max_lwps = Some(n);
        self
    }

    /// Starts the runtime's kernel threads.
    pub fn build(self) -> io::Result<Runtime> {
        crate::sysmon::WARNINGS_ENABLED
            .store(self.sysmon_warnings, std::sync::atomic::Ordering::Relaxed);
        let kind = match self.model {
            Model::OneToOne => Kind::OneToOne(OneToOne::new(self.name, self.timeline)?),
            Model::ManyToOne | Model::ManyToMany { .. } => {
                let (lwps, handoff) = match self.model {
                    Model::ManyToMany { lwps } => (lwps, true),
                    _ => (1, false),
                };
                if lwps == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a many-to-many runtime needs at least one LWP",
                    ));
                }
                let max_lwps = if handoff {
                    self.max_lwps.unwrap_or(2 * lwps + 4).max(lwps)
                } else {
                    1
                };
                if max_lwps > u16::MAX as usize {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("at most {} LWPs are supported", u16::MAX),
                    ));
                }
                let shared = Shared::new(Config {
                    lwps,
                    max_lwps,
                    pin: self.pin,
                    handoff,
                    timeline: self.timeline,
                    name: self.name,
                })?;
                for _ in 0..lwps {
                    if let Err(e) = shared.start_lwp() {
                        shared.shut_down();
                        return Err(e);
                    }
                }
                if let Some(threshold) = self.sysmon {
                    if let Err(e) = crate::sysmon::start(&shared, threshold) {
                        shared.shut_down();
                        return Err(e);
                    }
                }
                Kind::Lwp(shared)
            }
        };
        Ok(Runtime {
            kind,
            model: self.model,
        })
    }
}

enum Kind {
    Lwp(Arc<Shared>),
    OneToOne(Arc<OneToOne>),
}

/// A set of LWPs running ULTs under one threading model.
///
/// ```
/// use lwp::{Model, Runtime};
/// for model in [Model::ManyToOne, Model::OneToOne, Model::ManyToMany { lwps: 2 }] {
///     let rt = Runtime::new(model).unwrap();
///     let total: u64 = rt.run(|| {
///         let hs: Vec<_> = (1..=10u64).map(|i| lwp::spawn(move || i)).collect();
///         hs.into_iter().map(|h| h.join().unwrap()).sum()
///     });
///     assert_eq!(total, 55);
/// }
/// ```
pub struct Runtime {
    kind: Kind,
    model: Model,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("model", &self.model)
            .finish()
    }
}

impl Runtime {
    /// A runtime for `model` with default settings.
    pub fn new(model: Model) -> io::Result<Runtime> {
        RuntimeBuilder::new().model(model).build()
    }

    /// A builder for a configured runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }

    /// The model this runtime was built with.
    pub fn model(&self) -> Model {
        self.model
    }

    fn scheduler(&self) -> Arc<dyn Schedule> {
        match &self.kind {
            Kind::Lwp(s) => s.clone(),
            Kind::OneToOne(s) => s.clone(),
        }
    }

    /// Spawns a ULT on this runtime.
    ///
    /// # Panics
    /// If the ULT cannot be created (see [`Runtime::spawn_with`] for the error).
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_with(Builder::new(), f)
            .unwrap_or_else(|e| panic!("lwp: cannot spawn a ULT: {e}"))
    }

    /// Spawns a ULT configured by `builder` on this runtime; an `io::Error` says why not
    /// (no stack could be mapped, no kernel thread could be started, invalid settings).
    pub fn spawn_with<F, T>(&self, builder: Builder, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let sched = self.scheduler();
        let (raw, handle) = builder.inner.spawn_with(sched.clone(), f)?;
        sched.spawn(raw)?;
        Ok(handle)
    }

    /// Runs `f` as a ULT of this runtime and blocks the calling kernel thread until it
    /// returns; returns its value, or resumes its panic.
    pub fn run<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let handle = self
            .spawn_with(Builder::new().name("main".into()), f)
            .unwrap_or_else(|e| panic!("lwp: cannot start the first ULT: {e}"));
        match handle.join() {
            Ok(v) => v,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }

    /// Counters since the runtime started.
    pub fn metrics(&self) -> MetricsSnapshot {
        match &self.kind {
            Kind::Lwp(s) => s.metrics(),
            Kind::OneToOne(s) => s.metrics(),
        }
    }

    /// Busy intervals of every LWP so far, if built with [`RuntimeBuilder::timeline`].
    pub fn timeline(&self) -> Option<Timeline> {
        match &self.kind {
            Kind::Lwp(s) => s.timeline(),
            Kind::OneToOne(s) => s.timeline(),
        }
    }

    /// For each LWP started so far, the ULTs that live on it: started, not finished and not
    /// migratable (a started ULT stays on its LWP). Empty under the one-to-one model, where
    /// every ULT has a kernel thread of its own.
    ///
    /// ```
    /// let rt = lwp::Runtime::builder().model(lwp::Model::ManyToMany { lwps: 2 }).build()?;
    /// let (tx, rx) = lwp::channel::bounded::<()>(0);
    /// let waiter = rt.spawn(move || rx.recv().is_err());
    /// // The waiter counts once it has started (and parked in `recv`).
    /// let t0 = std::time::Instant::now();
    /// while rt.resident_ults().iter().sum::<u64>() == 0 {
    ///     assert!(t0.elapsed().as_secs() < 10, "the ULT never started");
    ///     std::thread::sleep(std::time::Duration::from_millis(1));
    /// }
    /// drop(tx);
    /// assert!(waiter.join().unwrap(), "recv saw the sender go");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn resident_ults(&self) -> Vec<u64> {
        match &self.kind {
            Kind::Lwp(s) => s.resident_ults(),
            Kind::OneToOne(_) => Vec::new(),
        }
    }

    /// LWPs started so far (for one-to-one: kernel threads started for ULTs).
    pub fn lwps_started(&self) -> u64 {
        self.metrics().lwps_started
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        match &self.kind {
            Kind::Lwp(s) => s.shut_down(),
            Kind::OneToOne(s) => s.shut_down(),
        }
    }
}

/// Configures a ULT, like `std::thread::Builder`: spawns on the runtime of the calling ULT,
/// or on the default runtime when called from a plain kernel thread.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    inner: ult::Builder,
}

impl Builder {
    /// Default name (none) and stack size ([`ult::stack::DEFAULT_STACK_SIZE`]).
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the ULT.
    pub fn name(self, name: String) -> Builder {
        Builder {
            inner: self.inner.name(name),
        }
    }

    /// Usable stack size in bytes.
    pub fn stack_size(self, bytes: usize) -> Builder {
        Builder {
            inner: self.inner.stack_size(bytes),
        }
    }

    /// Lets the scheduler move the ULT between LWPs after it started: once woken (or
    /// yielded) it waits in its LWP's FIFO of stealable ULTs, so an idle LWP may take it, and
    /// ULTs woken on one LWP run in the order they were woken.
    ///
    /// # Safety
    /// As [`ult::Builder::migratable`]: no thread-local reference (or `!Send` value) may be
    /// held across a switch point.
    pub unsafe fn migratable(self) -> Builder {
        let inner = self.inner;
        // SAFETY: our caller took on exactly the contract `ult::Builder::migratable` requires.
        let inner = unsafe { inner.migratable() };
        Builder { inner }
    }

    /// Spawns the ULT; see the type's documentation for where it runs.
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if ult::in_ult() {
            self.inner.spawn(f)
        } else {
            default_runtime()?.spawn_with(self, f)
        }
    }
}

/// The lazily started default runtime (many-to-many, one LWP per core).
pub fn default_runtime() -> io::Result<&'static Runtime> {
    static DEFAULT: OnceLock<Result<Runtime, String>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            RuntimeBuilder::new()
                .name("lwp-default")
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| io::Error::other(format!("cannot start the default runtime: {e}")))
}

/// Spawns a ULT, like `std::thread::spawn`: on the calling ULT's runtime, or on the default
/// runtime from a plain kernel thread.
///
/// # Panics
/// If the ULT cannot be created; use [`Builder::spawn`] for an error instead.
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new()
        .spawn(f)
        .unwrap_or_else(|e| panic!("lwp::spawn failed: {e}"))
}

/// Runs `f` as a ULT of the default runtime and waits for it (see [`Runtime::run`]).
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match default_runtime() {
        Ok(rt) => rt.run(f),
        Err(e) => panic!("{e}"),
    }
}
