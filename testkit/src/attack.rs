//! The attack tools of `src/bin/` as processes: [`Attacker`] (`pqrelay-attacker`, an active
//! attacker on the wire between a client and a relay) and [`CountingUpstream`]
//! (`pqrelay-test-upstream`, which counts the requests it receives). Both are found beside the
//! relay binary ([`crate::relay_bin`]) and killed on drop.

use std::path::PathBuf;

use crate::relay::{clean_command, relay_bin};
use crate::{free_port, Proc};

/// A tool binary of this crate, beside the relay binary.
pub fn tool_bin(name: &str) -> PathBuf {
    let path = relay_bin().with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} not found: `cargo build --workspace` builds it",
        path.display()
    );
    path
}

fn log(tag: &str, port: u16) -> PathBuf {
    std::env::temp_dir().join(format!(
        "pqrelay-test-{tag}-{port}-{}.log",
        std::process::id()
    ))
}

/// `pqrelay-attacker` between a client and the relay at `relay` (an `http://` URL).
pub struct Attacker {
    /// The process.
    pub proc: Proc,
    /// Its port on 127.0.0.1: point the client here.
    pub port: u16,
}

impl Attacker {
    /// Starts it in `mode` (`pass`, `substitute-key`, `answer-pairing`, `forge-error`, `cut`,
    /// `add-headers`), tampering with the first `times` exchanges.
    ///
    /// # Panics
    /// When it cannot be started or does not listen within 30 s.
    pub fn start(relay: &str, mode: &str, times: usize) -> Attacker {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let times = times.to_string();
        let args = [
            "--listen", &listen, "--relay", relay, "--mode", mode, "--times", &times,
        ];
        let mut cmd = clean_command(tool_bin("pqrelay-attacker"));
        cmd.args(args);
        let mut proc = Proc::spawn("attacker", &mut cmd, log("attacker", port))
            .unwrap_or_else(|e| panic!("{e}"));
        proc.wait_port(port).unwrap_or_else(|e| panic!("{e}"));
        Attacker { proc, port }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// `pqrelay-test-upstream`: `/count/<name>` counts, `GET /counts/<name>` reads a count,
/// `GET /headers` shows the request's headers.
pub struct CountingUpstream {
    /// The process.
    pub proc: Proc,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl CountingUpstream {
    /// Starts it on a free port.
    ///
    /// # Panics
    /// When it cannot be started or does not listen within 30 s.
    pub fn start() -> CountingUpstream {
        let port = free_port();
        let mut cmd = clean_command(tool_bin("pqrelay-test-upstream"));
        cmd.args(["--port", &port.to_string()]);
        let mut proc = Proc::spawn("counting upstream", &mut cmd, log("counting", port))
            .unwrap_or_else(|e| panic!("{e}"));
        proc.wait_port(port).unwrap_or_else(|e| panic!("{e}"));
        CountingUpstream { proc, port }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many requests `/count/<name>` received (`GET /counts/<name>`, one blocking request
    /// on its own connection).
    ///
    /// # Panics
    /// When the upstream does not answer with a JSON count.
    pub fn count(&self, name: &str) -> u64 {
        use std::io::{Read as _, Write as _};
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let request =
            format!("GET /counts/{name} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        let (_, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        let v: serde_json::Value = serde_json::from_str(body).expect("a JSON count");
        v["count"].as_u64().expect("a count")
    }
}
