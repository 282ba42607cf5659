//! workerd child processes: spawned from one long-lived thread (on Linux the children get
//! `SIGKILL` when that thread, hence the emulator, goes away, even on a crash or Ctrl-C),
//! killed and reaped when dropped, their output logged with secrets masked.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Lines of workerd output kept for error reports.
const TAIL_LINES: usize = 40;

type SpawnReply = oneshot::Sender<std::io::Result<Child>>;

/// Spawns processes from a dedicated thread that lives as long as this value.
pub(crate) struct Spawner {
    tx: Mutex<Option<mpsc::Sender<(Command, SpawnReply)>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Spawner {
    pub(crate) fn new() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<(Command, SpawnReply)>();
        let thread = std::thread::Builder::new().name("workerd-spawner".into()).spawn(move || {
            for (mut cmd, reply) in rx {
                die_with_parent(&mut cmd);
                // Nobody waits any more (the start was cancelled): do not leave the child running.
                if let Err(Ok(mut child)) = reply.send(cmd.spawn()) {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        })?;
        Ok(Self { tx: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)) })
    }

    pub(crate) async fn spawn(&self, cmd: Command) -> std::io::Result<Child> {
        let (reply, rx) = oneshot::channel();
        let sent = lock(&self.tx).as_ref().map(|tx| tx.send((cmd, reply)).is_ok()).unwrap_or(false);
        if !sent {
            return Err(std::io::Error::other("the workerd spawner has stopped"));
        }
        rx.await.map_err(|_| std::io::Error::other("the workerd spawner has stopped"))?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        lock(&self.tx).take();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

/// Ask the kernel to kill the child when the spawning thread exits.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
    // which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Replace every sensitive value in `line` with `***`.
pub(crate) fn mask(line: &str, sensitive: &[String]) -> String {
    let mut out = line.to_string();
    for s in sensitive.iter().filter(|s| s.len() >= 3) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// The last lines a process printed (masked).
#[derive(Clone, Default)]
pub(crate) struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn push(&self, line: String) {
        let mut t = lock(&self.0);
        if t.len() == TAIL_LINES {
            t.pop_front();
        }
        t.push_back(line);
    }

    pub(crate) fn text(&self) -> String {
        lock(&self.0).iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Log each line of `stream` (masked) and keep the tail.
fn pump(stream: impl Read + Send + 'static, label: String, sensitive: Arc<Vec<String>>, tail: Tail) {
    let spawned = std::thread::Builder::new().name("workerd-output".into()).spawn(move || {
        let reader = BufReader::new(stream);
        for line in reader.split(b'\n') {
            let Ok(line) = line else { break };
            let text = mask(String::from_utf8_lossy(&line).trim_end(), &sensitive);
            if text.is_empty() {
                continue;
            }
            tracing::debug!(target: "workerd", worker = %label, "{text}");
            tail.push(text);
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a thread for workerd output");
    }
}

/// One running workerd process serving one Worker version on a unix socket.
pub(crate) struct Process {
    child: Mutex<Child>,
    pub socket: PathBuf,
    pub tail: Tail,
}

impl Process {
    /// Start `workerd serve <config>` and wait until its socket accepts connections. The
    /// config file is removed once workerd has read it (it holds secret values).
    pub(crate) async fn start(
        spawner: &Spawner,
        workerd: &Path,
        config: &Path,
        socket: PathBuf,
        label: String,
        sensitive: Arc<Vec<String>>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut cmd = Command::new(workerd);
        cmd.arg("serve").arg(config).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = spawner.spawn(cmd).await.map_err(|e| format!("cannot run {}: {e}", workerd.display()))?;
        let tail = Tail::default();
        if let Some(out) = child.stdout.take() {
            pump(out, label.clone(), sensitive.clone(), tail.clone());
        }
        if let Some(err) = child.stderr.take() {
            pump(err, label.clone(), sensitive.clone(), tail.clone());
        }
        let process = Self { child: Mutex::new(child), socket, tail };
        let started = Instant::now();
        let result = loop {
            if let Some(status) = process.exited() {
                // Let the output threads catch the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let output = process.tail.text();
                break Err(if output.is_empty() {
                    format!("workerd exited with {status}")
                } else {
                    format!("workerd exited with {status}:\n{output}")
                });
            }
            if tokio::net::UnixStream::connect(&process.socket).await.is_ok() {
                break Ok(());
            }
            if started.elapsed() > timeout {
                break Err(format!("workerd did not start listening within {}s", timeout.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        };
        let _ = std::fs::remove_file(config);
        result.map(|()| process)
    }

    /// Exit status when the process has ended.
    pub(crate) fn exited(&self) -> Option<std::process::ExitStatus> {
        lock(&self.child).try_wait().ok().flatten()
    }

    /// Kill the process now and reap it.
    pub(crate) fn kill(&self) {
        let mut child = lock(&self.child);
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    pub(crate) fn pid(&self) -> u32 {
        lock(&self.child).id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_hides_values() {
        let s = vec!["s3cret-value".to_string(), "ab".to_string()];
        assert_eq!(mask("token=s3cret-value; ab", &s), "token=***; ab");
    }
}
