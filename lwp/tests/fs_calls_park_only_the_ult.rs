//! `lwp::fs` runs file operations on the blocking pool: under many-to-one (one LWP), a ULT
//! that writes, syncs or opens a FIFO parks while the other ULTs keep running, and the data
//! round-trips exactly.

mod sync_support;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lwp::{Model, Runtime};

/// A fresh directory under the system temp dir, removed by the caller.
fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lwp-fs-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Deterministic bytes that differ at every offset modulo 251.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed)
        .collect::<Vec<u8>>()
}

#[test]
fn large_write_and_sync_leave_the_lwp_free_for_a_ticking_ult() {
    let dir = scratch_dir("tick");
    let path = dir.join("big.bin");
    let (ticks_during_io, rounds) =
        sync_support::watchdog_slow("fs_calls_park_only_the_ult", move || {
            let rt = Runtime::new(Model::ManyToOne).unwrap();
            rt.run(move || {
                // Set only while this ULT is inside an fs call. Under many-to-one the ticker
                // can run only while the writer is parked, so a tick that sees the flag set
                // proves the fs call parked the ULT, not the LWP.
                let in_flight = Arc::new(AtomicBool::new(false));
                let ticks_during_io = Arc::new(AtomicU64::new(0));
                let done = Arc::new(AtomicBool::new(false));
                let ticker = {
                    let (in_flight, ticks, done) =
                        (in_flight.clone(), ticks_during_io.clone(), done.clone());
                    lwp::spawn(move || {
                        while !done.load(Ordering::Relaxed) {
                            lwp::sleep(Duration::from_millis(2));
                            if in_flight.load(Ordering::Relaxed) {
                                ticks.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                };
                let data = pattern(16 << 20, 0x5a);
                let mut rounds = 0u32;
                while ticks_during_io.load(Ordering::Relaxed) < 3 && rounds < 200 {
                    rounds += 1;
                    in_flight.store(true, Ordering::Relaxed);
                    let mut f = lwp::fs::File::create(&path).unwrap();
                    f.write_all(&data).unwrap();
                    f.sync_all().unwrap();
                    in_flight.store(false, Ordering::Relaxed);
                    drop(f);
                    let back = lwp::fs::read(&path).unwrap();
                    assert!(back == data, "round {rounds}: read back differs");
                }
                done.store(true, Ordering::Relaxed);
                ticker.join().unwrap();
                lwp::fs::remove_file(&path).unwrap();
                (ticks_during_io.load(Ordering::Relaxed), rounds)
            })
        });
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        ticks_during_io >= 3,
        "the ticker never ran during {rounds} write+sync rounds: fs blocked the LWP"
    );
}

#[test]
fn opening_a_fifo_parks_only_the_ult_until_a_writer_comes() {
    let dir = scratch_dir("fifo");
    let fifo = dir.join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
    let got = sync_support::watchdog_slow("fs_calls_park_only_the_ult", move || {
        let rt = Runtime::new(Model::ManyToOne).unwrap();
        rt.run(move || {
            // open(O_RDONLY) on a FIFO blocks in the kernel until a writer opens it.
            let reader = {
                let fifo = fifo.clone();
                lwp::spawn(move || {
                    let mut f = lwp::fs::File::open(&fifo).unwrap();
                    let mut s = String::new();
                    f.read_to_string(&mut s).unwrap();
                    s
                })
            };
            // The reader is parked inside `open`; this ULT still runs on the only LWP.
            for _ in 0..5 {
                lwp::sleep(Duration::from_millis(2));
            }
            let mut w = lwp::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            w.write_all(b"through the pool").unwrap();
            drop(w);
            reader.join().unwrap()
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(got, "through the pool");
}

#[test]
fn file_follows_std_semantics_inside_and_outside_ults() {
    fn exercise(dir: PathBuf) {
        let path = dir.join("f.txt");
        let mut f = lwp::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        f.write_all(b"0123456789").unwrap();
        assert_eq!(f.stream_position().unwrap(), 10);
        assert_eq!(f.seek(SeekFrom::Start(3)).unwrap(), 3);
        let mut four = [0u8; 4];
        f.read_exact(&mut four).unwrap();
        assert_eq!(&four, b"3456");
        // A clone shares the offset, like std.
        let mut g = f.try_clone().unwrap();
        let mut rest = Vec::new();
        g.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"789");
        assert_eq!(f.stream_position().unwrap(), 10);
        f.set_len(5).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 5);
        f.sync_data().unwrap();
        f.seek(SeekFrom::End(0)).unwrap();
        (&f).write_all(b"!").unwrap();
        drop((f, g));
        assert_eq!(lwp::fs::read_to_string(&path).unwrap(), "01234!");
        assert_eq!(lwp::fs::metadata(&path).unwrap().len(), 6);

        // Appending, free functions, directories.
        let mut a = lwp::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        a.write_all(b"?").unwrap();
        drop(a);
        assert_eq!(lwp::fs::read(&path).unwrap(), b"01234!?");
        let nested = dir.join("a/b/c");
        lwp::fs::create_dir_all(&nested).unwrap();
        lwp::fs::write(nested.join("x"), b"xyz").unwrap();
        lwp::fs::copy(nested.join("x"), nested.join("y")).unwrap();
        lwp::fs::rename(nested.join("y"), nested.join("z")).unwrap();
        assert!(lwp::fs::try_exists(nested.join("z")).unwrap());
        assert!(!lwp::fs::try_exists(nested.join("y")).unwrap());
        assert_eq!(lwp::fs::read_to_string(nested.join("z")).unwrap(), "xyz");
        lwp::fs::remove_file(nested.join("x")).unwrap();
        lwp::fs::remove_dir_all(dir.join("a")).unwrap();
        lwp::fs::remove_file(&path).unwrap();

        // A large buffer goes through in several chunks and comes back intact.
        let big = pattern(lwp::fs::MAX_CHUNK * 2 + 12345, 7);
        let mut f = lwp::fs::File::create(&path).unwrap();
        f.write_all(&big).unwrap();
        drop(f);
        let mut f = lwp::fs::File::open(&path).unwrap();
        let mut back = Vec::new();
        f.read_to_end(&mut back).unwrap();
        assert!(back == big, "large round trip differs");
        let mut one = vec![0u8; lwp::fs::MAX_CHUNK * 2];
        f.seek(SeekFrom::Start(0)).unwrap();
        let n = f.read(&mut one).unwrap();
        assert!(n > 0);
        if lwp::in_ult() {
            assert!(n <= lwp::fs::MAX_CHUNK, "one pool hand-off is capped");
        }
        assert!(one[..n] == big[..n]);
        lwp::fs::remove_file(&path).unwrap();
    }

    // Outside any ULT: inline std calls.
    let dir = scratch_dir("std-outside");
    exercise(dir.clone());
    let _ = std::fs::remove_dir_all(&dir);

    // Inside ULTs of each model: through the pool.
    for model in [
        Model::ManyToOne,
        Model::OneToOne,
        Model::ManyToMany { lwps: 2 },
    ] {
        let dir = scratch_dir("std-inside");
        let d = dir.clone();
        let jobs_before = lwp::blocking::jobs_run();
        sync_support::watchdog_slow("fs_calls_park_only_the_ult", move || {
            Runtime::new(model).unwrap().run(move || exercise(d))
        });
        assert!(
            lwp::blocking::jobs_run() > jobs_before,
            "{model}: no call went through the blocking pool"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn directories_and_links_behave_like_std_inside_a_ult() {
    let dir = scratch_dir("dirs");
    let rt = Runtime::new(Model::ManyToOne).unwrap();
    let d = dir.clone();
    rt.run(move || {
        for name in ["b", "a", "c"] {
            lwp::fs::write(d.join(name), name).unwrap();
        }
        lwp::fs::hard_link(d.join("a"), d.join("a-too")).unwrap();
        std::os::unix::fs::symlink("c", d.join("to-c")).unwrap();
        assert_eq!(
            lwp::fs::read_link(d.join("to-c")).unwrap(),
            PathBuf::from("c")
        );
        assert_eq!(lwp::fs::read_to_string(d.join("a-too")).unwrap(), "a");

        let listed = lwp::fs::read_dir(&d).unwrap();
        assert_eq!(listed.size_hint(), (5, Some(5)));
        let mut names: Vec<String> = listed
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "a-too", "b", "c", "to-c"]);

        let missing = lwp::fs::read_dir(d.join("missing")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
