//! A real S3-protocol server for lake tests: moto's standalone server (PyPI `moto[server]`,
//! installed by `scripts/stack install` into `~/.cache/fraudwall-tools/moto`), on a free port,
//! with one bucket. It speaks S3 over HTTP as AWS does; the lake talks to it through the same
//! object-store client it uses against AWS.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BUCKET: &str = "lake";

pub struct S3Server {
    child: Child,
    pub port: u16,
    log_dir: tempfile::TempDir,
}

/// `moto_server`: `MOTO_SERVER` if set, else where `scripts/stack install` puts it.
fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return p.into();
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    PathBuf::from(home).join(".cache/fraudwall-tools/moto/bin/moto_server")
}

/// One raw HTTP/1.1 request; returns the status code.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    Ok(buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0))
}

impl S3Server {
    /// Starts the server and creates [`BUCKET`].
    pub fn start() -> S3Server {
        let bin = moto_server();
        assert!(bin.exists(), "{} is missing: run `scripts/stack install`", bin.display());
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let log_dir = tempfile::tempdir().expect("a temp dir");
        let log = std::fs::File::create(log_dir.path().join("moto.log")).expect("a log file");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let server = S3Server { child, port, log_dir };
        // Importing moto takes a few seconds, more while other tests load both cores.
        for _ in 0..300 {
            if let Ok(200) = http(port, "PUT", &format!("/{BUCKET}")) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(server.log_dir.path().join("moto.log")).unwrap_or_default();
        panic!("the S3 server on port {port} did not answer within 30 s; its log:\n{log}");
    }

    /// The settings a lake client needs, as environment variables (for a child process).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The URL of a lake under `prefix` in the bucket.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// A lake under `prefix`, configured for this server (not from this process's environment).
    pub fn lake(&self, prefix: &str) -> lake::Lake {
        let env: Vec<(String, String)> = self.env().into_iter().map(|(k, v)| (k.to_lowercase(), v)).collect();
        let options: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        lake::Lake::open_with(&self.url(prefix), &options).expect("an S3 lake")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
