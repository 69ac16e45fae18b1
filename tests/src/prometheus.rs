//! A real Prometheus (Debian's package, installed by `scripts/stack install`) scraping the
//! services a test started in-process, with the repository's alert rules loaded.

use crate::http::{encode_query, request};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus in `dir`, scraping `targets` (`(job, address)`) every second and
    /// evaluating `rules` every second.
    pub async fn start(dir: &Path, targets: &[(&str, SocketAddr)], rules: &Path) -> Prometheus {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
        let jobs: String = targets
            .iter()
            .map(|(job, a)| format!("  - job_name: {job}\n    static_configs:\n      - targets: [\"{a}\"]\n"))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n{jobs}",
            rules.display()
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("writing the Prometheus config");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("a log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting prometheus (scripts/stack install installs it)");
        let p = Prometheus { child, addr };
        for _ in 0..150 {
            if let Ok((200, _)) = request(addr, "GET", "/-/ready", None, None).await {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("prometheus did not become ready; see {}", dir.join("prometheus.log").display());
    }

    /// Calls an API path and returns its `data`, or the error Prometheus gave.
    pub async fn api(&self, path: &str) -> Result<serde_json::Value, String> {
        let (status, body) = request(self.addr, "GET", path, None, None).await.map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}: {body}"))?;
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"].clone())
    }

    /// Evaluates an instant query; returns its series (or the parse/evaluation error).
    pub async fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", encode_query(expr))).await?;
        match data["resultType"].as_str() {
            Some("vector" | "matrix") => Ok(data["result"].as_array().cloned().unwrap_or_default()),
            // A scalar is one value: count it as one series.
            Some("scalar") => Ok(vec![data["result"].clone()]),
            other => Err(format!("unexpected result type {other:?}")),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
