//! Dropping a runtime joins every kernel thread it started, destroys queued ULTs (running
//! their destructors) and, under one-to-one, destroys parked ULTs too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lwp::{Model, Runtime};

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

struct DropCounter(Arc<AtomicUsize>);
impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn no_kernel_thread_outlives_its_runtime() {
    // Tests in this file run one at a time in this binary (one test), so counting threads
    // of the process is meaningful.
    let before = thread_count();
    for model in [
        Model::ManyToOne,
        Model::OneToOne,
        Model::ManyToMany { lwps: 3 },
    ] {
        let drops = Arc::new(AtomicUsize::new(0));
        {
            let rt = Runtime::new(model).unwrap();
            let d = drops.clone();
            rt.run(move || {
                // Parked forever (nobody unparks): holds a destructor-carrying value.
                for _ in 0..5 {
                    let guard = DropCounter(d.clone());
                    lwp::spawn(move || {
                        let _g = guard;
                        loop {
                            lwp::park();
                        }
                    });
                }
                lwp::sleep(Duration::from_millis(20)); // let them start and park
            });
            assert!(thread_count() > before, "{model}: the runtime has threads");
        }
        assert_eq!(
            thread_count(),
            before,
            "{model}: every kernel thread was joined"
        );
        if model == Model::OneToOne {
            assert_eq!(
                drops.load(Ordering::SeqCst),
                5,
                "parked 1:1 ULTs are unwound"
            );
        }
    }
}
