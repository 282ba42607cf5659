//! Finding and checking the `workerd` binary.
//!
//! Order: an explicit path (a flag or `WORKERD_BIN`, which must work), then `workerd` on
//! `PATH`, then `node_modules` in the working directory or one of its parents (where
//! `npm install workerd` puts it). npm's `workerd` launcher is a node script when npm ran with
//! `--ignore-scripts`; it is resolved to the platform package's native binary, so the emulator
//! always runs (and can always kill) the real process.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::RuntimeError;

/// The npm version of `workerd` the project pins (CI and the README install this one).
pub const WORKERD_NPM_VERSION: &str = "1.20260426.1";

/// How long `workerd --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);

/// A checked `workerd` binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workerd {
    path: PathBuf,
    /// The date `workerd --version` prints (`2026-04-26`): the newest compatibility date it
    /// is guaranteed to support.
    date: String,
}

/// Where a discovered binary came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerdSource {
    /// `--workerd PATH` or `WORKERD_BIN`.
    Explicit,
    /// `workerd` on `PATH`.
    Path,
    /// `node_modules` of the working directory or a parent.
    NodeModules,
}

impl Workerd {
    /// Check the binary at `path` (runs `workerd --version`). An npm launcher script is
    /// resolved to the native binary of the platform package next to it.
    pub fn at(path: impl AsRef<Path>) -> Result<Self, RuntimeError> {
        let path = resolve_launcher(path.as_ref());
        let date = version_of(&path)?;
        Ok(Self { path, date })
    }

    /// Find a working `workerd`: `explicit` (must work: an error otherwise), else `PATH`,
    /// else `node_modules` in the working directory or its parents. `Ok(None)`: not installed.
    pub fn discover(explicit: Option<&Path>) -> Result<Option<(Self, WorkerdSource)>, RuntimeError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self::discover_in(explicit, std::env::var_os("PATH").as_deref(), &cwd)
    }

    /// [`Self::discover`] with the search path and working directory given.
    pub fn discover_in(
        explicit: Option<&Path>,
        path_var: Option<&OsStr>,
        cwd: &Path,
    ) -> Result<Option<(Self, WorkerdSource)>, RuntimeError> {
        if let Some(p) = explicit {
            return Self::at(p).map(|w| Some((w, WorkerdSource::Explicit)));
        }
        let exe = format!("workerd{}", std::env::consts::EXE_SUFFIX);
        if let Some(var) = path_var {
            for dir in std::env::split_paths(var) {
                let candidate = dir.join(&exe);
                if is_file(&candidate) {
                    match Self::at(&candidate) {
                        Ok(w) => return Ok(Some((w, WorkerdSource::Path))),
                        Err(e) => {
                            tracing::warn!(path = %candidate.display(), error = %e, "ignoring unusable workerd on PATH")
                        }
                    }
                }
            }
        }
        for dir in cwd.ancestors() {
            let modules = dir.join("node_modules");
            if !modules.is_dir() {
                continue;
            }
            let mut candidates = Vec::new();
            if let Some(pkg) = platform_package() {
                candidates.push(modules.join("@cloudflare").join(pkg).join("bin").join(&exe));
            }
            candidates.push(modules.join(".bin").join(&exe));
            for candidate in candidates {
                if is_file(&candidate) {
                    match Self::at(&candidate) {
                        Ok(w) => return Ok(Some((w, WorkerdSource::NodeModules))),
                        Err(e) => {
                            tracing::warn!(path = %candidate.display(), error = %e, "ignoring unusable workerd in node_modules")
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The binary's date (`workerd --version`), e.g. `2026-04-26`.
    pub fn date(&self) -> &str {
        &self.date
    }
}

fn is_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file())
}

/// npm's platform package holding the native binary.
fn platform_package() -> Option<&'static str> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Some("workerd-linux-64"),
        ("linux", "aarch64") => Some("workerd-linux-arm64"),
        ("macos", "x86_64") => Some("workerd-darwin-64"),
        ("macos", "aarch64") => Some("workerd-darwin-arm64"),
        ("windows", "x86_64") => Some("workerd-windows-64"),
        _ => None,
    }
}

/// When `path` is npm's node launcher (`node_modules/workerd/bin/workerd`, often reached
/// through the `node_modules/.bin/workerd` symlink), the platform package's native binary;
/// otherwise `path` itself.
pub(crate) fn resolve_launcher(path: &Path) -> PathBuf {
    if !is_script(path) {
        return path.to_path_buf();
    }
    let Some(pkg) = platform_package() else { return path.to_path_buf() };
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    // real = <node_modules>/workerd/bin/workerd
    let Some(workerd_pkg) = real.parent().and_then(Path::parent) else { return path.to_path_buf() };
    let exe = format!("workerd{}", std::env::consts::EXE_SUFFIX);
    let nested = workerd_pkg.join("node_modules").join("@cloudflare").join(pkg).join("bin").join(&exe);
    let sibling = workerd_pkg.parent().map(|m| m.join("@cloudflare").join(pkg).join("bin").join(&exe));
    [Some(nested), sibling].into_iter().flatten().find(|c| is_file(c)).unwrap_or_else(|| path.to_path_buf())
}

fn is_script(path: &Path) -> bool {
    let mut head = [0u8; 2];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head == b"#!"
}

/// Run `workerd --version` and return its date.
fn version_of(path: &Path) -> Result<String, RuntimeError> {
    let unusable = |reason: String| RuntimeError::Unusable { path: path.to_path_buf(), reason };
    let mut child = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| unusable(format!("cannot run it: {e}")))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > VERSION_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(unusable(format!("`--version` did not finish within {}s", VERSION_TIMEOUT.as_secs())));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(unusable(format!("waiting for `--version`: {e}"))),
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    if !status.success() {
        return Err(unusable(format!("`--version` exited with {status}")));
    }
    parse_version(&out)
        .ok_or_else(|| unusable(format!("`--version` printed {:?}, not `workerd YYYY-MM-DD`", out.trim())))
}

/// `workerd 2026-04-26` -> `2026-04-26`.
fn parse_version(out: &str) -> Option<String> {
    let date = out.trim().strip_prefix("workerd ")?.split_whitespace().next()?;
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(date.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_output_parses() {
        assert_eq!(parse_version("workerd 2026-04-26\n").as_deref(), Some("2026-04-26"));
        assert_eq!(parse_version("workerd 2026-04-26 (extra)").as_deref(), Some("2026-04-26"));
        assert_eq!(parse_version("node v20"), None);
        assert_eq!(parse_version("workerd main"), None);
    }

    #[cfg(unix)]
    fn write_exe(path: &Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn explicit_must_work_and_path_then_node_modules_are_searched() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = tmp.path().join("bin/workerd");
        write_exe(&fake, "#!/bin/sh\necho 'workerd 2025-01-02'\n");
        let broken = tmp.path().join("broken/workerd");
        write_exe(&broken, "#!/bin/sh\necho nope\n");
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();

        let (w, src) = Workerd::discover_in(Some(&fake), None, &empty).unwrap().unwrap();
        assert_eq!((w.date(), src), ("2025-01-02", WorkerdSource::Explicit));
        assert!(matches!(Workerd::discover_in(Some(&broken), None, &empty), Err(RuntimeError::Unusable { .. })));
        assert!(Workerd::discover_in(Some(&tmp.path().join("missing")), None, &empty).is_err());

        // PATH: the broken one is skipped, the working one found.
        let path_var = std::env::join_paths([tmp.path().join("broken"), tmp.path().join("bin")]).unwrap();
        let (w, src) = Workerd::discover_in(None, Some(&path_var), &empty).unwrap().unwrap();
        assert_eq!((w.path(), src), (fake.as_path(), WorkerdSource::Path));

        // Nothing anywhere.
        assert_eq!(Workerd::discover_in(None, Some(OsStr::new("")), &empty).unwrap(), None);

        // node_modules of a parent directory, through npm's node launcher.
        if let Some(pkg) = platform_package() {
            let project = tmp.path().join("project");
            let native = project.join("node_modules/@cloudflare").join(pkg).join("bin/workerd");
            write_exe(&native, "#!/bin/sh\necho 'workerd 2025-03-04'\n");
            let launcher = project.join("node_modules/workerd/bin/workerd");
            write_exe(&launcher, "#!/usr/bin/env node\nrequire('child_process');\n");
            let sub = project.join("a/b");
            std::fs::create_dir_all(&sub).unwrap();
            let (w, src) = Workerd::discover_in(None, None, &sub).unwrap().unwrap();
            assert_eq!(src, WorkerdSource::NodeModules);
            assert_eq!(w.date(), "2025-03-04");
            assert_eq!(std::fs::canonicalize(w.path()).unwrap(), std::fs::canonicalize(&native).unwrap());
            // The launcher itself resolves to the native binary (it is a script).
            assert_eq!(
                std::fs::canonicalize(resolve_launcher(&launcher)).unwrap(),
                std::fs::canonicalize(&native).unwrap()
            );
        }
    }
}
