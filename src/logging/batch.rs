//! Log lines written in batches by a thread of their own.
//!
//! The webhook logs a line per denied admission (per admission at debug). A request should
//! format its line and go on: no write system call and no wake-up of another thread per line. tracing-appender's
//! `non_blocking` does move the write off the request, but it hands over each line through a
//! channel and wakes its writer for each one; at saturation on two cores that writer took 5 % of
//! the server's CPU (docs/performance.md). Here a request appends its line to a shared buffer,
//! waking the writer only when the buffer was empty; the writer then waits [`LINGER`] for more
//! lines and writes them all at once. So a line reaches the output within about `LINGER`, and a
//! busy webhook costs one wake-up and one write per `LINGER`, whatever its rate.
//!
//! Should the output stall (a full pipe to a stuck log collector), lines beyond [`LIMIT`] bytes
//! are dropped, never waited for, and the number dropped is logged once the output moves again,
//! in the log's own format ([`Notice`]).

use std::{
    io::{self, Write},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread::JoinHandle,
    time::Duration,
};

use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

/// How long the writer waits for more lines after the first one of a batch.
pub const LINGER: Duration = Duration::from_millis(10);

/// How many bytes of lines may wait for the output before new ones are dropped.
pub const LIMIT: usize = 8 << 20;

/// A buffer grown beyond this by a burst is given back once written.
const SHRINK_ABOVE: usize = 1 << 20;

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    dropped: u64,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    ready: Condvar,
}

impl Shared {
    /// The buffer, also after a thread panicked holding it: lines are plain bytes, never
    /// half-updated state.
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer for `tracing_subscriber::fmt().with_writer(..)`: cheap to clone, one per line.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<Shared>,
}

/// Writes what is left when dropped and stops the writer thread: keep it until exit.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Writes the notice that `dropped` lines were lost, as a line in the log's own format (a plain
/// text line would break a JSON log's parser).
pub type Notice = fn(&mut dyn Write, dropped: u64) -> io::Result<()>;

/// The notice as a text log line.
pub fn text_notice(out: &mut dyn Write, dropped: u64) -> io::Result<()> {
    let mut time = String::new();
    let _ = SystemTime.format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut time));
    writeln!(
        out,
        "{time}  WARN {}: log lines dropped: the log output did not keep up dropped={dropped}",
        module_path!()
    )
}

/// Starts the writer thread over `out`.
pub fn batched(out: impl Write + Send + 'static, notice: Notice) -> io::Result<(Writer, Guard)> {
    let shared = Arc::new(Shared::default());
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn({
            let shared = Arc::clone(&shared);
            move || write_batches(&shared, out, notice)
        })?;
    Ok((
        Writer {
            shared: Arc::clone(&shared),
        },
        Guard {
            shared,
            thread: Some(thread),
        },
    ))
}

fn write_batches(shared: &Shared, mut out: impl Write, notice: Notice) {
    let mut batch = Vec::new();
    loop {
        let mut pending = shared.lock();
        while pending.lines.is_empty() && pending.dropped == 0 && !pending.closed {
            pending = shared
                .ready
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if !pending.closed {
            // Let the batch fill: this wait is what spares a wake-up and a write per line.
            drop(pending);
            std::thread::sleep(LINGER);
            pending = shared.lock();
        }
        std::mem::swap(&mut pending.lines, &mut batch);
        let dropped = std::mem::take(&mut pending.dropped);
        let closed = pending.closed;
        drop(pending);
        // A failing output loses these lines; there is nowhere else to say so.
        let _ = out.write_all(&batch);
        if dropped > 0 {
            let _ = notice(&mut out, dropped);
        }
        let _ = out.flush();
        batch.clear();
        // After a stall filled it, do not keep megabytes for the usual few lines.
        if batch.capacity() > SHRINK_ABOVE {
            batch = Vec::new();
        }
        if closed {
            return;
        }
    }
}

impl Write for Writer {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut pending = self.shared.lock();
        if pending.lines.len() + line.len() > LIMIT {
            pending.dropped += 1;
            return Ok(line.len());
        }
        let first = pending.lines.is_empty();
        pending.lines.extend_from_slice(line);
        drop(pending);
        if first {
            self.shared.ready.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Writer {
    type Writer = Writer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::Captured;
    use std::time::Instant;

    #[test]
    fn every_line_arrives_whole_and_in_order_by_exit() {
        let out = Captured::default();
        let (writer, guard) = batched(out.clone(), text_notice).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..1_000 {
                        writer
                            .write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = out.text();
        assert_eq!(text.lines().count(), 4_000);
        for t in 0..4 {
            let numbers: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("thread {t} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(numbers, (0..1_000).collect::<Vec<_>>(), "thread {t}");
        }
    }

    #[test]
    fn a_quiet_line_is_written_without_waiting_for_exit() {
        let out = Captured::default();
        let (mut writer, _guard) = batched(out.clone(), text_notice).unwrap();
        writer.write_all(b"alone\n").unwrap();
        let started = Instant::now();
        while out.text().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(10), "never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(out.text(), "alone\n");
    }

    /// An output that blocks until the test lets it go, like a pipe nobody reads.
    struct Stalled {
        out: Captured,
        gate: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (open, turn) = &*self.gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = turn.wait(open).unwrap();
            }
            self.out.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_output_drops_lines_and_says_how_many() {
        let out = Captured::default();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let (mut writer, guard) = batched(
            Stalled {
                out: out.clone(),
                gate: Arc::clone(&gate),
            },
            text_notice,
        )
        .unwrap();
        // The first line takes the writer into the stalled output; the rest fill the buffer.
        writer.write_all(b"first\n").unwrap();
        std::thread::sleep(LINGER * 5);
        let mut line = vec![b'x'; 1023];
        line.push(b'\n');
        let fits = LIMIT / line.len();
        for _ in 0..fits + 10 {
            writer.write_all(&line).unwrap();
        }
        {
            let (open, turn) = &*gate;
            *open.lock().unwrap() = true;
            turn.notify_all();
        }
        drop(guard);
        let text = out.text();
        assert_eq!(text.lines().filter(|l| l.starts_with('x')).count(), fits);
        let last = text.lines().last().unwrap_or_default();
        assert!(
            last.ends_with("log lines dropped: the log output did not keep up dropped=10"),
            "{last}"
        );
    }
}
