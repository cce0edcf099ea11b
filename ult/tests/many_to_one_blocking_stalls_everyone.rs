//! The lecture's point about pure user-level threads: one ULT in a real blocking system call
//! blocks the kernel thread, and with it every other ULT of a many-to-one executor.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn a_blocking_read_stops_every_ult_for_its_duration() {
    let (mut reader, mut writer) = UnixStream::pair().unwrap();
    let start = Instant::now();
    // Another kernel thread writes only after 200 ms.
    let writer_thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        writer.write_all(b"x").unwrap();
    });
    let ticks = Arc::new(Mutex::new(Vec::new()));
    let t = ticks.clone();
    ult::run(move || {
        let ticker = ult::spawn(move || {
            for _ in 0..20 {
                t.lock().unwrap().push(start.elapsed());
                ult::sleep(Duration::from_millis(5));
            }
        });
        ult::yield_now(); // the ticker records its first tick
        let mut byte = [0u8; 1];
        reader.read_exact(&mut byte).unwrap(); // blocks the only kernel thread
        ticker.join().unwrap();
    });
    writer_thread.join().unwrap();
    let ticks = ticks.lock().unwrap();
    // The ticker wanted to tick every 5 ms; the blocking read froze it: one gap of ~200 ms.
    let largest_gap = ticks.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        largest_gap >= Duration::from_millis(150),
        "every ULT should stall during the blocking read; largest gap {largest_gap:?}"
    );
    assert!(
        ticks[1] >= Duration::from_millis(150),
        "second tick only after the read: {ticks:?}"
    );
}
