//! `lwp::io`: a pipe read or write that must wait parks only its ULT (the counterpart of
//! `ult`'s lecture test, where a blocking pipe read stops every ULT of a many-to-one
//! executor), under every model; EOF, back-pressure, timeouts, use outside a runtime, std
//! conversions, and `Pollable` over a child process's stdout and an fd it must refuse.

mod sync_support;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use lwp::io::{pipe, PipeReader, Pollable};
use lwp::{Model, Runtime};
use sync_support::{one_lwp_beside_a_ticker, watchdog_slow};

const MODELS: [Model; 3] = [
    Model::ManyToOne,
    Model::OneToOne,
    Model::ManyToMany { lwps: 2 },
];

/// Whether `O_NONBLOCK` is set on `fd`.
fn is_nonblocking(fd: impl AsFd) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETFL on a borrowed, open fd reads only its flags.
    let flags = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "fcntl: {}", std::io::Error::last_os_error());
    flags & libc::O_NONBLOCK != 0
}

#[test]
fn a_ult_waiting_on_a_pipe_leaves_its_only_lwp_to_the_others() {
    watchdog_slow("pipe on one LWP", || {
        let (reader, mut writer) = pipe().unwrap();
        // A kernel thread writes after 200 ms: under `ult`'s executor a blocking read would
        // stop every ULT for that long.
        let late_writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            writer.write_all(b"late").unwrap();
        });
        let (waited, ticks_before_data) = one_lwp_beside_a_ticker(move || {
            let start = Instant::now();
            let mut reader = reader;
            let mut buf = [0u8; 4];
            reader.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"late");
            start.elapsed()
        });
        late_writer.join().unwrap();
        assert!(
            waited >= Duration::from_millis(150),
            "read returned after {waited:?}"
        );
        // 200 ms of 1 ms sleeps: far more than 20 ticks if the LWP kept running them.
        assert!(
            ticks_before_data >= 20,
            "only {ticks_before_data} ticks while the read waited: the LWP was blocked"
        );
    });
}

#[test]
fn a_pipe_carries_a_stream_to_eof_under_every_model() {
    watchdog_slow("pipe stream", || {
        for model in MODELS {
            let rt = Runtime::new(model).unwrap();
            let received = rt.run(|| {
                let (mut reader, writer) = pipe().unwrap();
                let writers: Vec<_> = (0..4u8)
                    .map(|w| {
                        let mut writer = writer.try_clone().unwrap();
                        lwp::spawn(move || {
                            for _ in 0..100 {
                                // One byte per write: atomic, so each writer's count holds.
                                writer.write_all(&[w]).unwrap();
                                lwp::yield_now();
                            }
                        })
                    })
                    .collect();
                drop(writer);
                let mut all = Vec::new();
                reader.read_to_end(&mut all).unwrap(); // EOF once every clone is gone
                for w in writers {
                    w.join().unwrap();
                }
                all
            });
            assert_eq!(received.len(), 400, "{model:?}");
            for w in 0..4u8 {
                assert_eq!(
                    received.iter().filter(|&&b| b == w).count(),
                    100,
                    "{model:?}"
                );
            }
        }
    });
}

#[test]
fn a_full_pipe_parks_the_writer_until_a_reader_on_the_same_lwp_drains_it() {
    watchdog_slow("pipe back-pressure", || {
        // One LWP: a writer that blocked its kernel thread on the full pipe (64 KiB) would
        // never let the reader run, and the test would hang.
        let rt = Runtime::new(Model::ManyToOne).unwrap();
        let total = rt.run(|| {
            let (mut reader, mut writer) = pipe().unwrap();
            let producer = lwp::spawn(move || {
                let chunk = vec![7u8; 64 * 1024];
                for _ in 0..16 {
                    writer.write_all(&chunk).unwrap();
                }
            });
            let mut total = 0usize;
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match reader.read(&mut buf).unwrap() {
                    0 => break,
                    n => {
                        assert!(buf[..n].iter().all(|&b| b == 7));
                        total += n;
                    }
                }
            }
            producer.join().unwrap();
            total
        });
        assert_eq!(total, 16 * 64 * 1024);
    });
}

#[test]
fn pipe_timeouts_fail_with_timed_out_and_lose_nothing() {
    watchdog_slow("pipe timeouts", || {
        for model in MODELS {
            let rt = Runtime::new(model).unwrap();
            rt.run(move || {
                let (mut reader, mut writer) = pipe().unwrap();
                assert_eq!(reader.read_timeout().unwrap(), None);
                assert_eq!(
                    reader
                        .set_read_timeout(Some(Duration::ZERO))
                        .unwrap_err()
                        .kind(),
                    ErrorKind::InvalidInput
                );
                reader
                    .set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                let start = Instant::now();
                let err = reader.read(&mut [0u8; 8]).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::TimedOut, "{model:?}");
                assert!(start.elapsed() >= Duration::from_millis(45), "{model:?}");
                // Data that comes after the timeout is still there for the next read.
                writer.write_all(b"after").unwrap();
                let mut buf = [0u8; 5];
                reader.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"after");

                // A writer whose reader never reads times out once the pipe is full.
                writer
                    .set_write_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                let chunk = [0u8; 4096];
                let mut written = 0usize;
                let err = loop {
                    match writer.write(&chunk) {
                        Ok(n) => written += n,
                        Err(e) => break e,
                    }
                };
                assert_eq!(err.kind(), ErrorKind::TimedOut, "{model:?}");
                assert!(
                    written >= 4096,
                    "{model:?}: wrote {written} before the timeout"
                );
            });
        }
    });
}

#[test]
fn pipes_work_on_plain_threads_and_convert_to_and_from_std() {
    watchdog_slow("pipe outside a runtime", || {
        // Outside any runtime the waits are poll(2) on the calling thread.
        let (mut reader, writer) = pipe().unwrap();
        assert!(is_nonblocking(&reader));
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            (&writer).write_all(b"plain").unwrap();
            writer
        });
        let mut buf = [0u8; 5];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"plain");
        let writer = t.join().unwrap();

        // Back to std in blocking mode, and in again.
        let std_reader = reader.into_std().unwrap();
        assert!(!is_nonblocking(&std_reader));
        let mut std_writer = writer.into_std().unwrap();
        std_writer.write_all(b"x").unwrap();
        let mut reader = PipeReader::try_from(std_reader).unwrap();
        assert!(is_nonblocking(&reader));
        let mut one = [0u8; 1];
        reader.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
        assert_eq!(
            reader.try_read(&mut one).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
    });
}

#[test]
fn pollable_reads_a_child_process_without_blocking_the_lwp() {
    watchdog_slow("pollable child stdout", || {
        let (out, ticks_meanwhile) = one_lwp_beside_a_ticker(|| {
            let mut child = std::process::Command::new("sh")
                .args(["-c", "sleep 0.2; echo from the child"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = Pollable::new(child.stdout.take().unwrap()).unwrap();
            let mut stdout = stdout;
            let mut out = String::new();
            stdout.read_to_string(&mut out).unwrap();
            assert!(lwp::blocking(move || child.wait()).unwrap().success());
            // Back in blocking mode for whoever gets it next.
            let stdout = stdout.into_inner().unwrap();
            assert!(!is_nonblocking(&stdout));
            out
        });
        assert_eq!(out, "from the child\n");
        assert!(
            ticks_meanwhile >= 20,
            "only {ticks_meanwhile} ticks while the read waited: the LWP was blocked"
        );
    });
}

#[test]
fn pollable_refuses_regular_files_and_directories() {
    let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    let err = Pollable::new(file).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("lwp::fs"), "{err}");
    let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
    assert_eq!(
        Pollable::new(dir).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // A refused fd stays as it was.
    let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    let _ = Pollable::new(file.try_clone().unwrap());
    assert!(!is_nonblocking(&file));
}

#[test]
fn pollable_leaves_a_shared_fd_in_the_mode_it_found_it_in() {
    let (reader, _writer) = std::io::pipe().unwrap();
    // A duplicate shares the open file description, as a child's or a terminal's would.
    let other_holder = reader.try_clone().unwrap();
    let pollable = Pollable::new(reader).unwrap();
    assert!(is_nonblocking(&other_holder));
    drop(pollable);
    assert!(
        !is_nonblocking(&other_holder),
        "dropping did not restore blocking mode"
    );

    // An fd that was non-blocking already stays so, through drop and into_inner.
    let (reader, _writer) = pipe().unwrap();
    let other_holder = reader.try_clone().unwrap();
    drop(Pollable::new(reader).unwrap());
    assert!(is_nonblocking(&other_holder));
    let inner = Pollable::new(other_holder).unwrap().into_inner().unwrap();
    assert!(is_nonblocking(&inner));
}

#[test]
fn pollable_timeouts_and_read_with_wait_for_readiness() {
    watchdog_slow("pollable timeouts", || {
        let rt = Runtime::new(Model::ManyToMany { lwps: 2 }).unwrap();
        rt.run(|| {
            let (reader, writer) = std::io::pipe().unwrap();
            let reader = Pollable::new(reader).unwrap();
            let writer = Pollable::new(writer).unwrap();
            assert_eq!(reader.read_timeout().unwrap(), None);
            reader
                .set_read_timeout(Some(Duration::from_millis(30)))
                .unwrap();
            assert_eq!(
                reader.read_timeout().unwrap(),
                Some(Duration::from_millis(30))
            );
            let start = Instant::now();
            let err = (&reader).read(&mut [0u8; 4]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimedOut);
            assert!(start.elapsed() >= Duration::from_millis(25));
            // read_with retries its operation after each wait until it stops failing with
            // WouldBlock: here until a ULT writes 10 ms later.
            reader.set_read_timeout(None).unwrap();
            lwp::scope(|s| {
                s.spawn(|| {
                    lwp::sleep(Duration::from_millis(10));
                    (&writer).write_all(b"ok").unwrap();
                });
                let mut attempts = 0;
                let n = reader
                    .read_with(|r| {
                        attempts += 1;
                        (&*r).read(&mut [0u8; 2])
                    })
                    .unwrap();
                assert_eq!(n, 2);
                assert!(
                    attempts >= 2,
                    "read_with did not wait: {attempts} attempt(s)"
                );
            });
        });
    });
}
