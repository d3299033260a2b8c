//! Following a log file like `tail -F`, by polling: complete lines only (a
//! partial last line waits for its newline), bounded reads, and both kinds
//! of rotation:
//!
//! - rename and recreate (logrotate's default): the path names a new file.
//!   The new one is read from its start, and the old one is still read until
//!   nothing was added to it for [`LINGER`] (a writer that has not reopened
//!   yet still appends there).
//! - copytruncate: the file shrinks, or (written again past the point read
//!   before the next poll) the bytes just before that point change; it is
//!   read again from its start. What was added after the last poll and
//!   before the truncation is read from the copy (`app.log.1`, or another
//!   recent uncompressed `app.log.*` / `app.log-*` whose bytes before that
//!   point are the same). Whatever was written between logrotate's copy and
//!   its truncate is gone for every reader: that is copytruncate's own loss.
//!
//! The file found at start is read from its end unless `from_start`; a file
//! that appears later is read whole. [`Follower::step`] is one poll
//! (blocking I/O); [`run`] repeats it off the async runtime until shutdown.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Feed;
use super::line::MAX_LINE;

/// How often a file is looked at.
pub const POLL: Duration = Duration::from_millis(250);
/// How long a rotated-away file is still read after its last growth.
pub const LINGER: Duration = Duration::from_secs(5);
/// The most read from one file per read call.
const CHUNK: usize = 128 * 1024;
/// The most read in one step (all files); more waits for the next step, taken at once.
const STEP_BUDGET: usize = 8 * 1024 * 1024;
/// How many bytes before the read position are compared to spot a file that
/// was truncated and written again past that position between two polls.
const FINGERPRINT: usize = 128;
/// The most rotated-away files still read.
const MAX_OLD: usize = 4;
/// The most read from a copytruncate copy after the point already read.
const COPY_LIMIT: u64 = 64 * 1024 * 1024;
/// How recent a copy must be to be taken for one.
const COPY_AGE: Duration = Duration::from_secs(300);

/// Where a follower delivers what it reads: a check's [`Feed`], or a test's collector.
pub trait Sink: Send + 'static {
    /// Complete lines, in file order, without their line ends.
    fn lines<'a, I: Iterator<Item = Cow<'a, str>>>(&self, lines: I);
    /// What is wrong with the file (`None`: nothing any more).
    fn problem(&self, problem: Option<String>);
}

impl Sink for Feed {
    fn lines<'a, I: Iterator<Item = Cow<'a, str>>>(&self, lines: I) {
        Feed::lines(self, lines);
    }
    fn problem(&self, problem: Option<String>) {
        Feed::problem(self, problem);
    }
}

/// One open file and how far it was read.
struct Tail {
    file: File,
    id: (u64, u64),
    offset: u64,
    /// The last bytes read (at most [`FINGERPRINT`]), ending at `offset`.
    fingerprint: Vec<u8>,
    /// A line read so far without its newline (at most [`MAX_LINE`] bytes).
    partial: Vec<u8>,
    /// The partial line passed [`MAX_LINE`]: the rest of it is skipped.
    cut: bool,
    last_growth: Instant,
}

/// Follows one path. See the module doc.
pub struct Follower<S: Sink> {
    path: PathBuf,
    sink: S,
    from_start: bool,
    /// Not looked at the path yet: a file found now is read from its end
    /// unless `from_start`.
    first: bool,
    current: Option<Tail>,
    /// Rotated-away files still read, oldest first.
    old: Vec<Tail>,
    buf: Vec<u8>,
    problem: Option<String>,
}

impl<S: Sink> Follower<S> {
    pub fn new(path: impl Into<PathBuf>, from_start: bool, sink: S) -> Follower<S> {
        Follower {
            path: path.into(),
            sink,
            from_start,
            first: true,
            current: None,
            old: Vec::new(),
            buf: vec![0; CHUNK],
            problem: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the file if it is there, at its end unless `from_start`; what
    /// keeper's start does so that "the end" is the end when keeper started.
    pub fn open(&mut self) {
        self.look_at_path();
    }

    /// One poll: notices rotation, reads what was added (at most 8 MiB).
    /// Returns whether more is waiting (the budget ran out).
    pub fn step(&mut self) -> bool {
        self.look_at_path();
        let mut budget = STEP_BUDGET;
        let mut more = false;
        // Rotated-away files first: their lines came before the new file's.
        for tail in &mut self.old {
            match tail.read(&mut self.buf, &mut budget, &self.sink) {
                Ok(m) => more |= m,
                Err(e) => {
                    tracing::debug!(path = %self.path.display(), error = %e, "reading a rotated file")
                }
            }
        }
        let sink = &self.sink;
        self.old.retain_mut(|t| {
            let keep = t.last_growth.elapsed() < LINGER;
            if !keep {
                t.flush_partial(sink);
            }
            keep
        });
        let mut problem = None;
        if let Some(tail) = &mut self.current {
            let read = tail.truncated().and_then(|truncated| {
                if truncated {
                    tail.read_copy(&self.path, &mut self.buf, &self.sink);
                    tail.restart();
                }
                tail.read(&mut self.buf, &mut budget, &self.sink)
            });
            match read {
                Ok(m) => more |= m,
                Err(e) => problem = Some(format!("{}: {}", self.path.display(), io_words(&e))),
            }
        }
        if problem.is_some() {
            self.report(problem);
        }
        more
    }

    /// Opens the file the path names when it is not the one being read.
    fn look_at_path(&mut self) {
        let first = std::mem::replace(&mut self.first, false);
        let id = match std::fs::metadata(&self.path) {
            Ok(meta) => (meta.dev(), meta.ino()),
            Err(e) => {
                // Renamed away and not recreated yet: keep reading what is open.
                if self.current.is_none() {
                    let what = if e.kind() == io::ErrorKind::NotFound {
                        "not found (waiting for it)".to_string()
                    } else {
                        io_words(&e)
                    };
                    self.report(Some(format!("{}: {what}", self.path.display())));
                }
                return;
            }
        };
        if self.current.as_ref().is_some_and(|t| t.id == id) {
            self.report(None);
            return;
        }
        let opened = File::open(&self.path).and_then(|file| {
            let meta = file.metadata()?;
            if meta.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "is a directory",
                ));
            }
            Ok((file, meta))
        });
        let (file, meta) = match opened {
            Ok(f) => f,
            Err(e) => {
                self.report(Some(format!("{}: {}", self.path.display(), io_words(&e))));
                return;
            }
        };
        let id = (meta.dev(), meta.ino());
        if self.current.as_ref().is_some_and(|t| t.id == id) {
            self.report(None);
            return;
        }
        let offset = if first && !self.from_start {
            meta.len()
        } else {
            0
        };
        let mut tail = Tail {
            file,
            id,
            offset,
            fingerprint: Vec::new(),
            partial: Vec::new(),
            cut: false,
            last_growth: Instant::now(),
        };
        if offset > 0 {
            let n = (offset as usize).min(FINGERPRINT);
            let mut fp = vec![0; n];
            if tail.file.read_exact_at(&mut fp, offset - n as u64).is_ok() {
                tail.fingerprint = fp;
            }
        }
        if let Some(old) = self.current.replace(tail) {
            self.old.push(old);
            if self.old.len() > MAX_OLD {
                let mut dropped = self.old.remove(0);
                dropped.flush_partial(&self.sink);
            }
        }
        self.report(None);
    }

    /// Tells the sink about a change in what is wrong.
    fn report(&mut self, problem: Option<String>) {
        if self.problem != problem {
            self.problem.clone_from(&problem);
            self.sink.problem(problem);
        }
    }
}

impl Tail {
    /// Whether the file was truncated: it is shorter than what was read, or
    /// the bytes before the read position changed.
    fn truncated(&self) -> io::Result<bool> {
        let len = self.file.metadata()?.len();
        Ok(len < self.offset || !self.same_bytes_before(&self.file, self.offset))
    }

    /// Whether `file` holds this file's last-read bytes just before `offset`.
    fn same_bytes_before(&self, file: &File, offset: u64) -> bool {
        let n = self.fingerprint.len();
        let mut now = [0u8; FINGERPRINT];
        n == 0
            || (offset >= n as u64
                && file.read_exact_at(&mut now[..n], offset - n as u64).is_ok()
                && now[..n] == self.fingerprint[..])
    }

    /// Starts over from the beginning of the (truncated) file.
    fn restart(&mut self) {
        self.offset = 0;
        self.fingerprint.clear();
        self.partial.clear();
        self.cut = false;
    }

    /// After a copytruncate: reads what the copy holds past the point read
    /// here, when a copy is found (see the module doc).
    fn read_copy<S: Sink>(&mut self, path: &Path, buf: &mut [u8], sink: &S) {
        let Some(mut copy) = self.find_copy(path) else {
            return;
        };
        let mut budget = COPY_LIMIT as usize;
        std::mem::swap(&mut self.file, &mut copy);
        if let Err(e) = self.read(buf, &mut budget, sink) {
            tracing::debug!(path = %path.display(), error = %e, "reading a copytruncate copy");
        }
        std::mem::swap(&mut self.file, &mut copy);
        self.flush_partial(sink);
    }

    fn find_copy(&self, path: &Path) -> Option<File> {
        if self.fingerprint.is_empty() {
            return None;
        }
        let name = path.file_name()?.to_str()?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut candidates: Vec<(bool, std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let file_name = entry.file_name();
                let other = file_name.to_str()?;
                let rest = other.strip_prefix(name)?;
                let compressed = [".gz", ".bz2", ".xz", ".zst", ".zip"]
                    .iter()
                    .any(|ext| rest.ends_with(ext));
                if !(rest.starts_with('.') || rest.starts_with('-')) || compressed {
                    return None;
                }
                let meta = entry.metadata().ok()?;
                let modified = meta.modified().ok()?;
                let recent = modified.elapsed().map_or(true, |age| age < COPY_AGE);
                (meta.is_file() && meta.len() >= self.offset && recent)
                    .then(|| (rest == ".1", modified, entry.path()))
            })
            .collect();
        // `.1` first, then the most recent.
        candidates.sort_by_key(|c| std::cmp::Reverse((c.0, c.1)));
        candidates.into_iter().find_map(|(_, _, p)| {
            let file = File::open(&p).ok()?;
            self.same_bytes_before(&file, self.offset).then_some(file)
        })
    }

    /// Reads what was added, up to `budget`; delivers complete lines.
    fn read<S: Sink>(&mut self, buf: &mut [u8], budget: &mut usize, sink: &S) -> io::Result<bool> {
        loop {
            if *budget == 0 {
                return Ok(true);
            }
            let want = buf.len().min(*budget);
            let n = self.file.read_at(&mut buf[..want], self.offset)?;
            if n == 0 {
                return Ok(false);
            }
            self.offset += n as u64;
            *budget -= n;
            self.last_growth = Instant::now();
            let data = &buf[..n];
            self.remember(data);
            self.deliver(data, sink);
        }
    }

    fn remember(&mut self, data: &[u8]) {
        if data.len() >= FINGERPRINT {
            self.fingerprint.clear();
            self.fingerprint
                .extend_from_slice(&data[data.len() - FINGERPRINT..]);
        } else {
            self.fingerprint.extend_from_slice(data);
            let excess = self.fingerprint.len().saturating_sub(FINGERPRINT);
            self.fingerprint.drain(..excess);
        }
    }

    /// Splits `data` into lines: the first one completes the partial line,
    /// the last one (without a newline) becomes the partial line.
    fn deliver<S: Sink>(&mut self, data: &[u8], sink: &S) {
        let Some(last_nl) = memchr::memrchr(b'\n', data) else {
            self.keep_partial(data);
            return;
        };
        let mut start = 0;
        if !self.partial.is_empty() || self.cut {
            let first_nl = memchr::memchr(b'\n', data).unwrap_or(last_nl);
            self.keep_partial(&data[..first_nl]);
            let line = std::mem::take(&mut self.partial);
            self.cut = false;
            sink.lines(std::iter::once(text(&line)));
            self.partial = line;
            self.partial.clear();
            start = first_nl + 1;
        }
        if start <= last_nl {
            let complete = &data[start..last_nl];
            sink.lines(complete.split(|&b| b == b'\n').map(text));
        }
        self.keep_partial(&data[last_nl + 1..]);
    }

    /// Appends to the partial line, up to [`MAX_LINE`].
    fn keep_partial(&mut self, data: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.partial.len());
        if data.len() > room {
            self.cut = true;
        }
        self.partial
            .extend_from_slice(&data[..data.len().min(room)]);
    }

    /// A rotated-away file is let go: its last line, without a newline, still counts.
    fn flush_partial<S: Sink>(&mut self, sink: &S) {
        if !self.partial.is_empty() {
            sink.lines(std::iter::once(text(&self.partial)));
            self.partial.clear();
        }
    }
}

/// A line's bytes as text: invalid UTF-8 replaced, `\r` of a CRLF dropped.
fn text(line: &[u8]) -> Cow<'_, str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line)
}

fn io_words(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "not found".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::IsADirectory => "is a directory".into(),
        _ => e.to_string(),
    }
}

/// Polls every `every` until `shutdown`, each step on the blocking pool; a
/// step that ran out of budget is followed by the next one at once.
pub async fn run<S: Sink>(mut follower: Follower<S>, every: Duration, shutdown: CancellationToken) {
    loop {
        let step = tokio::task::spawn_blocking(move || {
            let more = follower.step();
            (follower, more)
        });
        let more;
        (follower, more) = match step.await {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "following a log file: the reader failed");
                return;
            }
        };
        if shutdown.is_cancelled() {
            return;
        }
        if !more {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

/// Opens the file of every `file` log check (at its end unless
/// `from_start`) and follows each in its own task until `shutdown`.
pub async fn spawn_all(
    feeds: &super::Feeds,
    shutdown: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for check in feeds.all() {
        let super::Source::File { path, from_start } = &check.source else {
            continue;
        };
        let mut follower = Follower::new(path.clone(), *from_start, check.feed.clone());
        let opened = tokio::task::spawn_blocking(move || {
            follower.open();
            follower
        })
        .await;
        let Ok(follower) = opened else {
            continue;
        };
        tasks.push(tokio::spawn(run(follower, POLL, shutdown.clone())));
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<(Vec<String>, Option<String>)>>);

    impl Sink for Collect {
        fn lines<'a, I: Iterator<Item = Cow<'a, str>>>(&self, lines: I) {
            self.0.lock().unwrap().0.extend(lines.map(Cow::into_owned));
        }
        fn problem(&self, problem: Option<String>) {
            self.0.lock().unwrap().1 = problem;
        }
    }

    impl Collect {
        fn lines(&self) -> Vec<String> {
            self.0.lock().unwrap().0.clone()
        }
        fn problem(&self) -> Option<String> {
            self.0.lock().unwrap().1.clone()
        }
    }

    fn append(path: &Path, data: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(data).unwrap();
    }

    #[test]
    fn complete_lines_only_from_the_end_unless_from_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"old 1\nold 2\n");
        let sink = Collect::default();
        let mut f = Follower::new(&path, false, sink.clone());
        f.open();
        f.step();
        assert!(sink.lines().is_empty());
        append(&path, b"new 1\r\nnew ");
        f.step();
        assert_eq!(sink.lines(), ["new 1"]);
        append(&path, b"2\n\xffbad utf8\n");
        f.step();
        assert_eq!(sink.lines(), ["new 1", "new 2", "\u{fffd}bad utf8"]);

        let all = Collect::default();
        let mut f = Follower::new(&path, true, all.clone());
        f.open();
        f.step();
        assert_eq!(all.lines().len(), 5);
    }

    #[test]
    fn a_missing_file_is_waited_for_and_read_whole_once_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("later.log");
        let sink = Collect::default();
        let mut f = Follower::new(&path, false, sink.clone());
        f.open();
        assert!(
            sink.problem()
                .unwrap()
                .ends_with("later.log: not found (waiting for it)")
        );
        append(&path, b"first\n");
        f.step();
        assert_eq!(sink.lines(), ["first"]);
        assert_eq!(sink.problem(), None);
    }

    #[test]
    fn a_line_past_64_kib_is_cut_not_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.log");
        let sink = Collect::default();
        let mut f = Follower::new(&path, true, sink.clone());
        f.open();
        // Written in pieces, so the long line spans several reads and steps.
        let long = vec![b'x'; 3 * MAX_LINE];
        append(&path, b"before\n");
        append(&path, &long[..MAX_LINE / 2]);
        f.step();
        append(&path, &long[MAX_LINE / 2..]);
        f.step();
        append(&path, b"tail\nafter\n");
        f.step();
        let lines = sink.lines();
        assert_eq!(lines.len(), 3, "one line, cut");
        assert_eq!(lines[0], "before");
        assert_eq!(lines[1].len(), MAX_LINE);
        assert_eq!(lines[2], "after");
    }

    #[test]
    fn copytruncate_written_past_the_old_end_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let sink = Collect::default();
        let mut f = Follower::new(&path, true, sink.clone());
        f.open();
        append(&path, b"line 1\nline 2\n");
        f.step();
        // Truncated, then written to beyond the old length before the next poll.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, b"line 3 is longer\nline 4\n");
        f.step();
        assert_eq!(
            sink.lines(),
            ["line 1", "line 2", "line 3 is longer", "line 4"]
        );
    }

    #[test]
    fn copytruncate_lines_added_since_the_last_poll_are_read_from_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let sink = Collect::default();
        let mut f = Follower::new(&path, true, sink.clone());
        f.open();
        append(&path, b"line 1\nline 2\n");
        f.step();
        // Unread when logrotate copies and truncates: only the copy has them.
        append(&path, b"line 3\nline 4\n");
        // A decoy looked at first (`.1`): recent, long enough, but other bytes.
        std::fs::write(
            dir.path().join("app.log.1"),
            b"other 1\nother 2\nother 3\nother 4\n",
        )
        .unwrap();
        // logrotate's copy, with `dateext`.
        std::fs::copy(&path, dir.path().join("app.log-20261127")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, b"line 5\n");
        f.step();
        assert_eq!(
            sink.lines(),
            ["line 1", "line 2", "line 3", "line 4", "line 5"]
        );
    }

    #[test]
    fn rename_rotation_reads_the_old_file_to_its_end_and_the_new_one_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, b"a\n");
        let sink = Collect::default();
        let mut f = Follower::new(&path, true, sink.clone());
        f.open();
        f.step();
        let mut writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        // The writer has not reopened yet: its lines land in the renamed file.
        writer.write_all(b"b\n").unwrap();
        f.step();
        append(&path, b"c\n");
        writer.write_all(b"d\n").unwrap();
        f.step();
        let mut lines = sink.lines();
        lines.sort();
        assert_eq!(lines, ["a", "b", "c", "d"]);
    }
}
