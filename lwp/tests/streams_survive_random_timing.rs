//! Byte streams under random timing: a kernel-thread peer writes chunks of random sizes with
//! random pauses, then closes, while a ULT reads with random buffer sizes and random pauses;
//! and the other way round, a ULT writing faster than a slow kernel-thread reader drains.
//! Every byte must arrive in order and the reader must see EOF, over TCP, Unix streams and
//! pipes, under every model. This is the test that the readiness shortcuts (a short read
//! skips the read that would fail, edges forgotten before a read) cannot lose a wake-up or
//! an EOF however the data, the close and the reads interleave.
//!
//! Seeded (printed on failure; `STREAM_SEED=n` repeats a run) and bounded: a few hundred
//! small exchanges, a watchdog on each model.

mod sync_support;

use std::io::{Read, Write};
use std::time::Duration;

use lwp::{Model, Runtime};
use sync_support::watchdog_slow;

/// xorshift64*: enough randomness for timing, no dependency.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A pause: none half the time, else a yield of the kernel thread or up to 300 µs.
    fn pause(&mut self) -> Option<Duration> {
        match self.below(4) {
            0 | 1 => None,
            2 => Some(Duration::ZERO),
            _ => Some(Duration::from_micros(self.below(300))),
        }
    }
}

fn thread_pause(rng: &mut Rng) {
    match rng.pause() {
        None => {}
        Some(Duration::ZERO) => std::thread::yield_now(),
        Some(d) => std::thread::sleep(d),
    }
}

fn ult_pause(rng: &mut Rng) {
    match rng.pause() {
        None => {}
        Some(Duration::ZERO) => lwp::yield_now(),
        Some(d) => lwp::sleep(d),
    }
}

/// The bytes of exchange `round`: a pattern a reordering or a loss would break.
fn pattern(round: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(31).wrapping_add(round * 7) % 251) as u8)
        .collect()
}

/// A connected pair: the ULT's end (an `lwp` type) and the kernel thread's end (std's).
trait Transport {
    type Ours: Read + Write + Send + 'static;
    type Theirs: Read + Write + Send + 'static;
    fn pair() -> (Self::Ours, Self::Theirs);
}

struct Tcp;
impl Transport for Tcp {
    type Ours = lwp::net::TcpStream;
    type Theirs = std::net::TcpStream;
    fn pair() -> (Self::Ours, Self::Theirs) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let theirs = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        (lwp::net::TcpStream::from_std(ours).unwrap(), theirs)
    }
}

struct Unix;
impl Transport for Unix {
    type Ours = lwp::net::UnixStream;
    type Theirs = std::os::unix::net::UnixStream;
    fn pair() -> (Self::Ours, Self::Theirs) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        (lwp::net::UnixStream::from_std(ours).unwrap(), theirs)
    }
}

/// Two pipes make one duplex stream.
struct Pipes;
struct Duplex<R, W>(R, W);
impl<R: Read, W> Read for Duplex<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}
impl<R, W: Write> Write for Duplex<R, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.1.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.1.flush()
    }
}
impl Transport for Pipes {
    type Ours = Duplex<lwp::io::PipeReader, lwp::io::PipeWriter>;
    type Theirs = Duplex<std::io::PipeReader, std::io::PipeWriter>;
    fn pair() -> (Self::Ours, Self::Theirs) {
        let (our_in, their_out) = std::io::pipe().unwrap();
        let (their_in, our_out) = std::io::pipe().unwrap();
        (
            Duplex(
                lwp::io::PipeReader::from_std(our_in).unwrap(),
                lwp::io::PipeWriter::from_std(our_out).unwrap(),
            ),
            Duplex(their_in, their_out),
        )
    }
}

/// The peer writes, pauses, writes, closes; the ULT reads to EOF.
fn peer_writes_then_closes<T: Transport>(round: u64, rng: &mut Rng) {
    let (mut ours, theirs) = T::pair();
    let total = 1 + rng.below(20_000) as usize;
    let expected = pattern(round, total);
    let mut peer_rng = Rng(rng.next() | 1);
    let sent = expected.clone();
    let peer = std::thread::spawn(move || {
        let mut theirs = theirs;
        let mut at = 0;
        while at < sent.len() {
            let n = (1 + peer_rng.below(3000) as usize).min(sent.len() - at);
            theirs.write_all(&sent[at..at + n]).unwrap();
            at += n;
            thread_pause(&mut peer_rng);
        }
        // Dropped here: the close often lands with the last chunk.
    });
    let mut got = Vec::with_capacity(total);
    let mut buf = vec![0u8; 4096];
    loop {
        let want = 1 + rng.below(buf.len() as u64) as usize;
        match ours.read(&mut buf[..want]).unwrap() {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
        ult_pause(rng);
    }
    peer.join().unwrap();
    assert_eq!(got.len(), expected.len(), "round {round}: lengths differ");
    assert!(got == expected, "round {round}: bytes differ");
}

/// The ULT writes more than the buffers hold while the peer reads slowly, then closes; the
/// peer must get every byte and then EOF.
fn ult_writes_past_the_buffer<T: Transport>(round: u64, rng: &mut Rng) {
    let (ours, theirs) = T::pair();
    let total = 64 * 1024 + rng.below(256 * 1024) as usize;
    let expected = pattern(round, total);
    let mut peer_rng = Rng(rng.next() | 1);
    let peer = std::thread::spawn(move || {
        let mut theirs = theirs;
        let mut got = Vec::with_capacity(total);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let want = 1 + peer_rng.below(buf.len() as u64) as usize;
            match theirs.read(&mut buf[..want]).unwrap() {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
            if peer_rng.below(8) == 0 {
                thread_pause(&mut peer_rng);
            }
        }
        got
    });
    let mut ours = ours;
    let mut at = 0;
    while at < expected.len() {
        let n = (1 + rng.below(40_000) as usize).min(expected.len() - at);
        ours.write_all(&expected[at..at + n]).unwrap();
        at += n;
        if rng.below(4) == 0 {
            ult_pause(rng);
        }
    }
    drop(ours);
    let got = peer.join().unwrap();
    assert_eq!(got.len(), expected.len(), "round {round}: lengths differ");
    assert!(got == expected, "round {round}: bytes differ");
}

fn run_all(model: Model, seed: u64) {
    let rt = Runtime::new(model).unwrap();
    rt.run(move || {
        let mut rng = Rng(seed | 1);
        for round in 0..sync_support::size(40) as u64 {
            peer_writes_then_closes::<Tcp>(round, &mut rng);
            peer_writes_then_closes::<Unix>(round, &mut rng);
            peer_writes_then_closes::<Pipes>(round, &mut rng);
        }
        for round in 0..sync_support::size(6) as u64 {
            ult_writes_past_the_buffer::<Tcp>(round, &mut rng);
            ult_writes_past_the_buffer::<Unix>(round, &mut rng);
            ult_writes_past_the_buffer::<Pipes>(round, &mut rng);
        }
    });
}

fn seed() -> u64 {
    match std::env::var("STREAM_SEED") {
        Ok(s) => s.parse().expect("STREAM_SEED must be a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    }
}

#[test]
fn every_byte_and_the_eof_arrive_under_random_timing_under_every_model() {
    for model in [
        Model::ManyToOne,
        Model::ManyToMany { lwps: 2 },
        Model::OneToOne,
    ] {
        let seed = seed();
        let outcome = std::panic::catch_unwind(|| {
            watchdog_slow("random stream timing", move || run_all(model, seed))
        });
        if let Err(payload) = outcome {
            eprintln!("failed under {model} with STREAM_SEED={seed}");
            std::panic::resume_unwind(payload);
        }
    }
}
