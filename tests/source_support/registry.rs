//! A real OCI registry for tests: Debian's `docker-registry` (the CNCF distribution registry) on
//! 127.0.0.1, with artifacts pushed by `oras` (the PyPI package, driven by a small Python
//! script). `.ci/run` installs both; with `CI` set a missing tool fails the test.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PUSH: &str = r#"
import sys, oras.client
host, target, user, password = sys.argv[1:5]
files = sys.argv[5:]
backend = "basic" if user else "token"
c = oras.client.OrasClient(hostname=host, insecure=True, auth_backend=backend)
if user:
    c.login(username=user, password=password, hostname=host)
r = c.push(files=files, target=target)
print("DIGEST", r.headers["Docker-Content-Digest"])
"#;

fn python() -> String {
    std::env::var("CLODO_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn on_path(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(bin)).find(|p| p.is_file()))
        .unwrap_or_default()
}

/// The registry binary, or `None` (test skipped) when a tool is missing and `CI` is unset.
pub fn tools() -> Option<PathBuf> {
    let registry = on_path("docker-registry");
    let oras = Command::new(python())
        .args(["-c", "import oras.client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    match (registry, oras) {
        (Some(r), true) => Some(r),
        (r, oras) => {
            let missing = format!(
                "docker-registry {} / python oras {}",
                if r.is_some() { "found" } else { "missing" },
                if oras { "found" } else { "missing" }
            );
            if std::env::var_os("CI").is_some() {
                panic!("{missing} but CI is set: .ci/run installs docker-registry (apt) and oras (pip)");
            }
            println!("SKIPPED: {missing} (apt-get install docker-registry; pip install oras)");
            None
        }
    }
}

/// A running registry; killed on drop.
pub struct Registry {
    bin: PathBuf,
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub host: String,
    pub user: Option<(String, String)>,
}

impl Registry {
    /// Start on a free port; with `user`, htpasswd (bcrypt) auth is required for every request.
    pub fn start(bin: &Path, user: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let host = format!("127.0.0.1:{port}");
        let mut auth = String::new();
        if let Some((u, p)) = user {
            let hash = bcrypt::hash(p, 5).unwrap();
            std::fs::write(dir.path().join("htpasswd"), format!("{u}:{hash}\n")).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: clodo-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n{auth}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut r = Registry {
            bin: bin.to_path_buf(),
            child: None,
            dir,
            host,
            user: user.map(|(u, p)| (u.to_string(), p.to_string())),
        };
        r.resume();
        r
    }

    /// (Re)start the process on the same port and storage.
    pub fn resume(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let child = Command::new(&self.bin)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(&self.host).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not listen on {} within 10 s: {}", self.host, self.log());
    }

    /// Stop the process (the storage stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Successful blob downloads served so far (from the registry's access log).
    pub fn blob_downloads(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:") && l.contains("\" 200 "))
            .count()
    }

    /// Push files (name, content, media type) as `repo:tag` with oras; returns the manifest digest.
    pub fn push(&self, repo_tag: &str, files: &[(&str, &[u8], &str)]) -> String {
        let work = tempfile::tempdir().unwrap();
        let mut args = vec![
            "-c".to_string(),
            PUSH.to_string(),
            self.host.clone(),
            format!("{}/{repo_tag}", self.host),
            self.user.as_ref().map(|u| u.0.clone()).unwrap_or_default(),
            self.user.as_ref().map(|u| u.1.clone()).unwrap_or_default(),
        ];
        for (name, content, media) in files {
            std::fs::File::create(work.path().join(name)).unwrap().write_all(content).unwrap();
            args.push(format!("{name}:{media}"));
        }
        let out = Command::new(python()).args(&args).current_dir(work.path()).output().expect("python runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "oras push failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("DIGEST ").map(str::to_string))
            .unwrap_or_else(|| panic!("no digest in oras output: {stdout}"))
    }

    /// Path of a blob's data file in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join(format!("data/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
