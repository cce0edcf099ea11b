//! `lwp::fs` failures come back as the `io::Error`s std returns (NotFound, AlreadyExists,
//! InvalidData, ...), inside ULTs and on plain threads alike.

mod sync_support;

use std::io::{ErrorKind, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use lwp::{Model, Runtime};

fn check_errors(tag: &str) {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lwp-fs-err-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    lwp::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("does-not-exist");

    let kind = |r: std::io::Result<()>| r.unwrap_err().kind();
    assert_eq!(
        kind(lwp::fs::File::open(&missing).map(drop)),
        ErrorKind::NotFound
    );
    assert_eq!(kind(lwp::fs::read(&missing).map(drop)), ErrorKind::NotFound);
    assert_eq!(
        kind(lwp::fs::read_to_string(&missing).map(drop)),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(lwp::fs::metadata(&missing).map(drop)),
        ErrorKind::NotFound
    );
    assert_eq!(kind(lwp::fs::remove_file(&missing)), ErrorKind::NotFound);
    assert_eq!(
        kind(lwp::fs::write(dir.join("no/such/dir/f"), b"x")),
        ErrorKind::NotFound
    );
    assert!(!lwp::fs::try_exists(&missing).unwrap());

    let present = dir.join("present");
    lwp::fs::write(&present, [0xff, 0xfe, b'a']).unwrap();
    assert_eq!(
        kind(lwp::fs::File::create_new(&present).map(drop)),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(lwp::fs::read_to_string(&present).map(drop)),
        ErrorKind::InvalidData
    );
    // Through the Read impl: InvalidData, and like std the string is left untouched.
    let mut s = String::from("kept");
    let mut f = lwp::fs::File::open(&present).unwrap();
    assert_eq!(
        f.read_to_string(&mut s).unwrap_err().kind(),
        ErrorKind::InvalidData
    );
    assert_eq!(s, "kept");
    // Writing to a read-only handle fails like std (EBADF).
    let std_err = std::io::Write::write(&mut std::fs::File::open(&present).unwrap(), b"x")
        .unwrap_err()
        .kind();
    let ours = std::io::Write::write(&mut f, b"x").unwrap_err().kind();
    assert_eq!(ours, std_err);
    drop(f);

    lwp::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(kind(lwp::fs::remove_dir(&dir)), ErrorKind::NotFound);
}

#[test]
fn errors_outside_ults_are_std_errors() {
    check_errors("outside");
}

#[test]
fn errors_inside_ults_are_std_errors() {
    for model in [
        Model::ManyToOne,
        Model::OneToOne,
        Model::ManyToMany { lwps: 2 },
    ] {
        sync_support::watchdog_slow("fs_errors_are_io_errors", move || {
            Runtime::new(model).unwrap().run(|| check_errors("inside"))
        });
    }
}
