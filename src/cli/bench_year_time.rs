//! Time in `ibq bench year`'s build: the engine's clock set to each simulated moment, and
//! the files the build writes stamped with the moment they stand for.
//!
//! The engine keeps its rows, its removals (`deletionTimestamp`) and its upkeep (retention,
//! vacuum, log cleanup) on its clock, so the build sets that clock to every moment of the
//! days it replays. One more thing follows the wall clock: the modification time the file
//! system gives each file, by which Delta cleans `_delta_log` (and a full vacuum judges
//! files no version lists). A replay writes a day in seconds, so before each upkeep the
//! build gives every file written since the last one the simulated moment it was written
//! at, found from the wall-clock times at which the clock was set.

use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use crate::market::clock::Clock;

/// The engine's clock during the build: set to each simulated moment. It remembers when
/// (on the wall clock) it was set to what, until `Stamper::stamp` has used it.
#[derive(Debug)]
pub struct SetClock(Mutex<Settings>);

#[derive(Debug)]
struct Settings {
    now: DateTime<Utc>,
    /// (wall time of the setting, moment set), oldest first.
    log: Vec<(SystemTime, DateTime<Utc>)>,
}

impl SetClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(Settings {
            now: at,
            log: vec![(settled_now(), at)],
        }))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if s.now != at {
            s.now = at;
            s.log.push((settled_now(), at));
        }
    }

    /// The moment the clock showed when a file got the modification time `wall`: the
    /// setting made before it (its earliest setting before any).
    fn moment_at(log: &[(SystemTime, DateTime<Utc>)], wall: SystemTime) -> Option<DateTime<Utc>> {
        let i = log.partition_point(|(w, _)| *w < wall);
        log.get(i.saturating_sub(1)).map(|(_, at)| *at)
    }
}

/// The wall time now, returned once the file system's clock has passed it: a file
/// system stamps files from a coarse clock that lags the precise one by up to a tick, so
/// without the wait a file written just after a setting could look older than it. After
/// it, every file written before carries a time at or before the returned one, every file
/// written after a later time.
fn settled_now() -> SystemTime {
    let t = SystemTime::now();
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(50);
    while coarse_now().is_some_and(|c| c <= t) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    t
}

/// The coarse real-time clock file systems stamp files from (Linux).
fn coarse_now() -> Option<SystemTime> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    (rc == 0).then(|| {
        SystemTime::UNIX_EPOCH
            + std::time::Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.max(0) as u32)
    })
}

impl Clock for SetClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).now
    }
}

/// Gives the files of a lake written since its last pass the simulated moment they were
/// written at.
#[derive(Debug)]
pub struct Stamper {
    last_pass: SystemTime,
}

impl Default for Stamper {
    fn default() -> Self {
        Self {
            last_pass: SystemTime::UNIX_EPOCH,
        }
    }
}

impl Stamper {
    /// Stamps every file under `root` modified (on the wall clock) since the last pass with
    /// the moment `clock` showed when it was written. Returns how many files it stamped.
    pub fn stamp(&mut self, root: &Path, clock: &SetClock) -> anyhow::Result<usize> {
        let started = settled_now();
        let log = {
            let mut s = clock.0.lock().unwrap_or_else(|p| p.into_inner());
            let log = s.log.clone();
            // Keep the current setting: files written from now on were written at it.
            let last = *s.log.last().expect("the clock has a setting");
            s.log = vec![last];
            log
        };
        let mut n = 0;
        for entry in walkdir::WalkDir::new(root).min_depth(1) {
            let entry = entry?;
            if !entry.file_type().is_file() {
                continue;
            }
            let modified = entry.metadata()?.modified()?;
            if modified <= self.last_pass {
                continue;
            }
            let Some(at) = SetClock::moment_at(&log, modified) else {
                continue;
            };
            let file = std::fs::File::options().write(true).open(entry.path())?;
            file.set_modified(SystemTime::from(at))?;
            n += 1;
        }
        self.last_pass = started;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_file_gets_the_moment_the_clock_showed_when_it_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let clock = SetClock::new(t("2026-03-02T14:30:00Z"));
        let mut stamper = Stamper::default();
        std::fs::write(dir.path().join("a"), "a").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        clock.set(t("2026-03-02T15:00:00Z"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::create_dir(dir.path().join("date=2026-03-02")).unwrap();
        std::fs::write(dir.path().join("date=2026-03-02/b"), "b").unwrap();
        assert_eq!(stamper.stamp(dir.path(), &clock).unwrap(), 2);
        let mtime = |p: &str| {
            DateTime::<Utc>::from(
                std::fs::metadata(dir.path().join(p))
                    .unwrap()
                    .modified()
                    .unwrap(),
            )
        };
        assert_eq!(mtime("a"), t("2026-03-02T14:30:00Z"));
        assert_eq!(mtime("date=2026-03-02/b"), t("2026-03-02T15:00:00Z"));
        // Stamped files are left alone; a file written later gets the clock's setting then.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("c"), "c").unwrap();
        assert_eq!(stamper.stamp(dir.path(), &clock).unwrap(), 1);
        assert_eq!(mtime("c"), t("2026-03-02T15:00:00Z"));
        assert_eq!(mtime("a"), t("2026-03-02T14:30:00Z"));
    }
}
