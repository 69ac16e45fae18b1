//! A private broker + Redis for one test binary, so tests never collide with a running demo.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

pub struct Stack {
    pub dir: tempfile::TempDir,
    pub kafka_port: u16,
    pub redis_port: u16,
    /// Partitions of every topic.
    pub partitions: u32,
}

/// Whether nothing listens on `port` any more within five seconds.
fn port_closes(port: u16) -> bool {
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The checkout under test. Read at run time, not with `env!`: cargo hashes workspace members
/// relative to the workspace, so two checkouts sharing one `CARGO_TARGET_DIR` can share test
/// binaries, and a compile-time path would point into the other checkout.
pub fn repo_root() -> PathBuf {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("tests run by cargo test");
    PathBuf::from(dir).parent().expect("tests/ is inside the repo").to_path_buf()
}

impl Stack {
    /// Starts a stack (installing tansu/redis if missing, as `scripts/stack up` does).
    pub fn start() -> Stack {
        Stack::with_partitions(3)
    }

    /// A stack whose topics have `partitions` partitions (1 gives one total order).
    pub fn with_partitions(partitions: u32) -> Stack {
        // A port found free can be taken before the broker binds it (other tests' clients use
        // ephemeral ports too): `up` refuses a taken port, so try again on fresh ones.
        for attempt in 1..=3 {
            let dir = tempfile::tempdir().expect("a temp dir");
            let stack = Stack { dir, kafka_port: free_port(), redis_port: free_port(), partitions };
            if stack.script("up").success() {
                return stack;
            }
            eprintln!("[stack] attempt {attempt} failed; retrying on other ports");
        }
        panic!("scripts/stack up failed three times")
    }

    pub fn script(&self, verb: &str) -> std::process::ExitStatus {
        Command::new(repo_root().join("scripts/stack"))
            .arg(verb)
            .env("STACK_DIR", self.dir.path())
            .env("KAFKA_PORT", self.kafka_port.to_string())
            .env("REDIS_PORT", self.redis_port.to_string())
            .env("PARTITIONS", self.partitions.to_string())
            // Tests that want Prometheus start their own, scraping their in-process services.
            .env("PROMETHEUS", "off")
            .status()
            .expect("running scripts/stack")
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port)
    }

    /// Command-line arguments that point service `name` at this stack, on port 0, with an
    /// admin token named `tests` (and the repository's routes file for the enricher).
    pub fn service_args(&self, name: &str, token: &str) -> Vec<String> {
        let mut args: Vec<String> = vec![
            name.into(),
            "--brokers".into(),
            self.brokers(),
            "--redis-url".into(),
            self.redis_url(),
            "--http-addr".into(),
            "127.0.0.1:0".into(),
            "--admin-tokens".into(),
            format!("tests:{token}"),
        ];
        if name == "enricher" {
            args.extend(["--routes".into(), repo_root().join("config/routes.toml").display().to_string()]);
        }
        args
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.script("down");
    }
}

impl Stack {
    /// Stops redis-server (its append-only file stays) and returns at once.
    pub fn stop_redis(&self) {
        let ok = Command::new("redis-cli")
            .args(["-p", &self.redis_port.to_string(), "shutdown"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        // redis-cli reports the dropped connection of a successful SHUTDOWN as an error on
        // some versions; what matters is that the port is closed.
        assert!(port_closes(self.redis_port), "redis on {} did not stop (redis-cli ok: {ok})", self.redis_port);
    }

    /// Kills the broker (SIGKILL: no clean shutdown) and returns at once.
    pub fn kill_broker(&self) {
        let pid = std::fs::read_to_string(self.dir.path().join("tansu.pid")).expect("tansu.pid");
        let status = Command::new("kill").args(["-9", pid.trim()]).status().expect("kill");
        assert!(status.success(), "kill -9 tansu");
        assert!(port_closes(self.kafka_port), "tansu on {} did not stop", self.kafka_port);
    }

    /// Starts whatever of the stack is not running (same ports, same data).
    pub fn restart_missing(&self) {
        assert!(self.script("up").success(), "scripts/stack up failed");
    }
}
