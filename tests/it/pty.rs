//! The real `ibq` console in a real pseudo-terminal: keys typed as bytes, the screen read
//! back through a vt100 parser, the raw output kept for escape sequences (OSC 52, BEL).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};

use crate::common::ibq_bin;

pub struct PtyConsole {
    child: Box<dyn Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    parser: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    _master: Box<dyn MasterPty + Send>,
}

impl PtyConsole {
    /// `ibq` (the console with its engine) on `lake` with `cfg`, against `gateway`, in a
    /// `rows`×`cols` terminal without colours and outside tmux.
    pub fn start(cfg: &Path, lake: &Path, gateway: &str, rows: u16, cols: u16) -> PtyConsole {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(ibq_bin());
        cmd.args([
            "--config",
            cfg.to_str().unwrap(),
            "--lake",
            lake.to_str().unwrap(),
            "--gateway",
            gateway,
        ]);
        cmd.env("TERM", "xterm-256color");
        cmd.env("NO_COLOR", "1");
        cmd.env_remove("TMUX");
        cmd.cwd(cfg.parent().unwrap());
        let child = pty.slave.spawn_command(cmd).unwrap();
        drop(pty.slave);
        let parser = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        {
            let (parser, raw) = (Arc::clone(&parser), Arc::clone(&raw));
            let mut reader = pty.master.try_clone_reader().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    parser.lock().unwrap().process(&buf[..n]);
                    raw.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        let writer = pty.master.take_writer().unwrap();
        PtyConsole {
            child,
            writer,
            parser,
            raw,
            _master: pty.master,
        }
    }

    /// Types `k` (bytes as a terminal sends them: `\r` enter, `\x1b` esc, `\x15` ctrl-u)
    /// and gives the console a moment to draw.
    pub fn keys(&mut self, k: &str) {
        self.writer.write_all(k.as_bytes()).unwrap();
        self.writer.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }

    pub fn screen(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    /// Everything the console wrote, escape sequences included.
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw.lock().unwrap()).to_string()
    }

    /// `q` (and the yes when something is still processing); ibq must exit with success.
    pub fn quit(mut self) {
        self.keys("q");
        if self.screen().contains("Quit") {
            self.keys("y");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "ibq did not exit");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(status.success(), "exit status {status:?}");
    }
}
