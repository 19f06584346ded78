//! `ledger audit export` / `verify` / `keygen`, `ledger checkpoint` and `ledger verify
//! --checkpoint` on the real binary: a clean export verifies (ours and the Python
//! verifier), the same range twice gives the same data files, the rows of a small run as
//! checked by hand (snapshot), a denial, a hold and a kill-switch trip with their reasons,
//! and every tampering found: random bytes, rows removed or swapped, manifest edits, a
//! replaced signature, a rewritten history presented as an extension, a ledger rewritten
//! with recomputed hashes after a checkpoint.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ledger_adapters::sled_log::raw;
use ledger_core::chain::Hash32;
use ledger_core::codec;
use ledger_core::event::{EventDraft, Payload, TickData};
use ledger_core::ids::Seq;
use proptest::prelude::*;
use rust_decimal::Decimal;

use crate::harness::{fixture, small_ledger, workspace_root, Ledger, Run};

/// A small ledger (run 1, seqs 1..=227) with a key pair in its temp dir.
struct Setup {
    ledger: Ledger,
    key: PathBuf,
    public: PathBuf,
}

fn setup() -> Setup {
    let ledger = small_ledger();
    let key = ledger.dir.path().join("audit.key");
    let out = ledger.ok(&["audit", "keygen", "--name", "example.com/ledger", "--out", key.to_str().unwrap()]);
    assert!(out.contains("public key"), "{out}");
    let public = ledger.dir.path().join("audit.key.pub");
    Setup { ledger, key, public }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.ledger.dir.path().join(name)
    }

    fn export(&self, out: &str, extra: &[&str]) -> PathBuf {
        let dir = self.path(out);
        let mut args = vec!["audit", "export", "--run", "1", "--out", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.ledger.ok(&args);
        dir
    }

    fn verify(&self, dir: &Path, extra: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
        command.current_dir(workspace_root()).args(["audit", "verify"]).arg(dir).args(extra).env("RUST_LOG", "warn");
        let output = command.output().expect("the ledger binary runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// `python3 scripts/audit/verify.py ARGS`, or `None` (with the reason printed) when
/// python3 is not on PATH.
fn python_verify(args: &[&str]) -> Option<Run> {
    let output = match Command::new("python3").arg(workspace_root().join("scripts/audit/verify.py")).args(args).output()
    {
        Ok(output) => output,
        Err(error) => {
            println!("skipped: the Python verifier needs python3 on PATH ({error})");
            return None;
        }
    };
    Some(Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

#[test]
fn a_clean_export_verifies_and_the_same_range_gives_the_same_data_files() {
    let s = setup();
    let key = s.key.to_str().unwrap();
    let public = s.public.to_str().unwrap();
    let first = s.export("first", &["--sign", key]);
    let second = s.export("second", &["--sign", key]);
    for name in ["rows.jsonl", "records.bin"] {
        assert_eq!(read(&first, name), read(&second, name), "{name} differs between two exports of one range");
    }
    // The manifests differ in their creation time only.
    let manifest = |dir: &Path| {
        let mut value: serde_json::Value = serde_json::from_slice(&read(dir, "manifest.json")).unwrap();
        value.as_object_mut().unwrap().remove("created_at");
        value
    };
    assert_eq!(manifest(&first), manifest(&second));
    let ok = s.verify(&first, &["--pubkey", public]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout.starts_with("ok: ") && ok.stdout.contains("checkpoint signed by example.com/ledger"),
        "{}",
        ok.stdout
    );
    // With the ledger at hand, the records are checked against it too.
    let against = s.ledger.run(&["audit", "verify", first.to_str().unwrap()]);
    assert_eq!(against.code, 0, "{}{}", against.stdout, against.stderr);
    assert!(against.stdout.contains("the records are the ledger's"), "{}", against.stdout);
    // CSV, and a range inside the run (by seq and by time).
    let csv = s.export("csv", &["--format", "csv", "--from", "100", "--to", "1998-03-10T00:00:00Z"]);
    let text = String::from_utf8(read(&csv, "rows.csv")).unwrap();
    assert!(text.starts_with("row_kind,event,run_id,mode,config_hash"), "{text}");
    let ok = s.ledger.run(&["audit", "verify", csv.to_str().unwrap()]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    // The second verifier, from the format alone.
    let Some(selftest) = python_verify(&["--self-test"]) else { return };
    assert_eq!(selftest.code, 0, "{}{}", selftest.stdout, selftest.stderr);
    for (dir, extra) in [(&first, vec!["--pubkey", public]), (&csv, vec![])] {
        let mut args = vec![dir.to_str().unwrap()];
        args.extend(extra);
        let run = python_verify(&args).unwrap();
        assert_eq!(run.code, 0, "verify.py {args:?}: {}{}", run.stdout, run.stderr);
    }
}

#[test]
fn the_export_of_a_small_run_is_as_checked_by_hand() {
    let s = setup();
    let dir = s.export("small", &["--to", "30"]);
    let rows = String::from_utf8(read(&dir, "rows.jsonl")).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(&read(&dir, "manifest.json")).unwrap();
    manifest["created_at"] = "[created_at]".into();
    manifest.as_object_mut().unwrap().remove("columns"); // the documented list, tested apart
    let pretty = serde_json::to_string_pretty(&manifest).unwrap();
    insta::assert_snapshot!("audit_export_small_rows", rows);
    insta::assert_snapshot!("audit_export_small_manifest", pretty);
}

#[test]
fn a_denial_a_hold_and_a_kill_switch_trip_appear_with_their_reasons() {
    let ledger = Ledger::new();
    let decisions = ledger.dir.path().join("decisions.jsonl");
    std::fs::write(
        &decisions,
        concat!(
            r#"{"ts": "1998-01-05T00:00:00Z", "action": "long", "size_pct": 0.5, "confidence": 0.9, "reason": "breakout above the range"}"#,
            "\n",
            r#"{"ts": "1998-01-07T00:00:00Z", "action": "short", "size_pct": 0.5, "confidence": 0.1, "reason": "weak reversal signal"}"#,
            "\n",
            r#"{"ts": "1998-01-09T00:00:00Z", "action": "long", "size_pct": 0.5, "confidence": 0.9, "reason": "second breakout"}"#,
            "\n",
        ),
    )
    .unwrap();
    let config = ledger.dir.path().join("audit.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\nfiles = [{:?}]\n[provider]\nkind = \"script\"\nfile = {:?}\n[risk]\nmin_confidence = \"0.5\"\n[kill_switch]\nmax_drawdown = \"0.02\"\nclose_positions = true\n",
            fixture("spy-daily-1998-q1.csv"),
            decisions.to_str().unwrap()
        ),
    )
    .unwrap();
    ledger.ok(&["replay", "--config", config.to_str().unwrap()]);
    let out = ledger.dir.path().join("export");
    ledger.ok(&["audit", "export", "--run", "1", "--format", "csv", "--out", out.to_str().unwrap()]);
    let mut reader = csv::Reader::from_path(out.join("rows.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<std::collections::BTreeMap<String, String>> = reader
        .records()
        .map(|r| headers.iter().map(str::to_string).zip(r.unwrap().iter().map(str::to_string)).collect())
        .collect();
    let find = |what: &dyn Fn(&std::collections::BTreeMap<String, String>) -> bool| {
        rows.iter().find(|r| what(r)).cloned().expect("the row is in the export")
    };
    // TC0: a hold, approved without checks, with its reason.
    let hold = find(&|r| r["action"] == "hold");
    assert_eq!(
        (hold["verdict"].as_str(), hold["decision_reason"].as_str()),
        ("approved", "no scripted decision for this tick")
    );
    // TC1: the weak signal denied, naming the check.
    let denied = find(&|r| r["decision_reason"] == "weak reversal signal");
    assert_eq!(denied["verdict"], "denied");
    assert!(denied["verdict_reason"].starts_with("min_confidence"), "{denied:?}");
    assert!(denied["checks"].contains(r#""id":"min_confidence","limit":"0.5","passed":false"#), "{denied:?}");
    assert_eq!(denied["orders"], "", "a denied decision places no order");
    // TC2: the approved long, its order and fill.
    let long = find(&|r| r["decision_reason"] == "breakout above the range");
    assert!(long["orders"].contains(r#""origin":"verdict""#), "{long:?}");
    assert!(long["fills"].contains(r#""client_order_id":"r1-1""#), "{long:?}");
    // TC3: the drawdown trip, with its reason, and the order that closes the position.
    let trip = find(&|r| !r["kill_switch"].is_empty());
    assert!(trip["kill_switch"].contains(r#""trigger":"drawdown""#), "{trip:?}");
    assert!(trip["kill_switch"].contains("reached limit 0.02"), "{trip:?}");
    assert!(trip["orders"].contains(r#""origin":"kill_switch""#), "{trip:?}");
    // TC4: after the trip, a decision is denied by the switch.
    let blocked = find(&|r| r["decision_reason"] == "second breakout");
    assert!(blocked["verdict_reason"].starts_with("kill_switch"), "{blocked:?}");
    let run_rows: Vec<&str> = rows.iter().filter(|r| r["row_kind"] == "run").map(|r| r["event"].as_str()).collect();
    assert_eq!(run_rows, ["RunStarted", "RunStopped"]);
    let ok = ledger.run(&["audit", "verify", out.to_str().unwrap()]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
}

/// Rewrites the ledger's record at `target` (a tick: its close moves up by 1) and
/// recomputes the hash of every record from there on, as someone with write access
/// could: the chain alone still verifies.
fn rewrite_history(data_dir: &Path, target: u64) {
    let (_db, events) = raw::events_tree(data_dir).unwrap();
    let mut prev = Hash32::ZERO;
    let mut seq = 1u64;
    let segments: Vec<_> = events.iter().map(Result::unwrap).collect();
    for (key, segment) in segments {
        let mut out = Vec::new();
        for record in codec::segment_records(&segment) {
            let mut record = record.unwrap().to_vec();
            if seq == target {
                let event = codec::decode_record(Seq::new(seq), &prev, &record).unwrap();
                let mut payload = event.payload.clone();
                let Payload::MarketTick(tick) = &mut payload else { panic!("seq {seq} is not a tick") };
                let TickData::Bar(bar) = &mut tick.data else { panic!("not a bar") };
                bar.close += Decimal::ONE;
                let h = &event.header;
                let draft = EventDraft {
                    run_id: h.run_id,
                    cycle_id: h.cycle_id,
                    causation_seq: h.causation_seq,
                    ts_event: h.ts_event,
                    ts_recorded: h.ts_recorded,
                    payload,
                };
                let mut framed = Vec::new();
                codec::encode_unchained(Seq::new(seq), &draft, &mut framed).unwrap();
                record = framed[4..].to_vec();
            }
            prev = if seq >= target {
                codec::chain_record(&mut record, Seq::new(seq), &prev)
            } else {
                codec::frame(&record).unwrap().stored_hash
            };
            out.extend_from_slice(&(record.len() as u32).to_le_bytes());
            out.extend_from_slice(&record);
            seq += 1;
        }
        events.insert(key, out).unwrap();
    }
    events.flush().unwrap();
}

#[test]
fn a_rewritten_history_is_caught_by_checkpoints_and_consistency_proofs() {
    let s = setup();
    let (key, public) = (s.key.to_str().unwrap(), s.public.to_str().unwrap());
    let checkpoint = s.path("ledger.checkpoint");
    let out = s.ledger.ok(&["checkpoint", "--sign", key, "--out", checkpoint.to_str().unwrap()]);
    assert!(out.contains("checkpoint of 227 records"), "{out}");
    let old = s.export("old", &["--to", "120", "--sign", key]);
    let ok = s.ledger.run(&["verify", "--checkpoint", checkpoint.to_str().unwrap(), "--pubkey", public]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    // An honest later export extends the earlier one, proven.
    let honest = s.export("honest", &["--previous", old.to_str().unwrap(), "--sign", key]);
    let run = s.verify(&honest, &["--previous", old.to_str().unwrap(), "--pubkey", public]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("extends the previous export"), "{}", run.stdout);
    if let Some(py) =
        python_verify(&[honest.to_str().unwrap(), "--previous", old.to_str().unwrap(), "--pubkey", public])
    {
        assert_eq!(py.code, 0, "{}{}", py.stdout, py.stderr);
    }

    rewrite_history(&s.ledger.data_dir(), 5);
    // The chain alone is fooled ...
    let fooled = s.ledger.run(&["verify"]);
    assert_eq!(fooled.code, 0, "{}{}", fooled.stdout, fooled.stderr);
    // ... the signed checkpoint is not.
    let caught = s.ledger.run(&["verify", "--checkpoint", checkpoint.to_str().unwrap(), "--pubkey", public]);
    assert_eq!(caught.code, 1, "{}{}", caught.stdout, caught.stderr);
    assert!(caught.stdout.contains("history up to seq 227 was rewritten"), "{}", caught.stdout);
    // An export of the rewritten ledger cannot prove it extends the earlier one.
    let refused = s.ledger.run(&[
        "audit",
        "export",
        "--run",
        "1",
        "--out",
        s.path("forged").to_str().unwrap(),
        "--previous",
        old.to_str().unwrap(),
    ]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("no longer extends the previous export"), "{}", refused.stderr);
    // Presented as an extension with the honest export's proof, it fails the proof.
    let forged = s.export("forged2", &["--sign", key]);
    let mut manifest: serde_json::Value = serde_json::from_slice(&read(&forged, "manifest.json")).unwrap();
    let honest_manifest: serde_json::Value = serde_json::from_slice(&read(&honest, "manifest.json")).unwrap();
    manifest["consistency"] = honest_manifest["consistency"].clone();
    std::fs::write(forged.join("manifest.json"), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let run = s.verify(&forged, &["--previous", old.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("the consistency proof fails"), "{}", run.stdout);
    if let Some(py) = python_verify(&[forged.to_str().unwrap(), "--previous", old.to_str().unwrap()]) {
        assert_eq!(py.code, 1, "{}{}", py.stdout, py.stderr);
    }
    // And the old export, checked against the rewritten ledger, names the record.
    let against = s.ledger.run(&["audit", "verify", old.to_str().unwrap()]);
    assert_eq!(against.code, 1, "{}{}", against.stdout, against.stderr);
    assert!(against.stdout.contains("seq 5: the exported record differs from the ledger's"), "{}", against.stdout);
}

#[test]
fn named_tamperings_are_each_found_and_listed() {
    let s = setup();
    let (key, public) = (s.key.to_str().unwrap(), s.public.to_str().unwrap());
    let clean = s.export("clean", &["--sign", key]);
    let case = |name: &str, change: &dyn Fn(&Path), expect: &str, extra: &[&str]| {
        let dir = s.path(name);
        copy_dir(&clean, &dir);
        change(&dir);
        let run = s.verify(&dir, extra);
        assert_eq!(run.code, 1, "{name}: {}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains(expect), "{name}: expected {expect:?} in\n{}", run.stdout);
        if let Some(py) = python_verify(&[&[dir.to_str().unwrap()], extra].concat()) {
            assert_eq!(py.code, 1, "verify.py, {name}: {}{}", py.stdout, py.stderr);
        }
    };
    let lines = |dir: &Path| -> Vec<String> {
        String::from_utf8(read(dir, "rows.jsonl")).unwrap().lines().map(str::to_string).collect()
    };
    let write_lines =
        |dir: &Path, lines: &[String]| std::fs::write(dir.join("rows.jsonl"), lines.join("\n") + "\n").unwrap();
    // TC0: a field changed: its row's hash and the row folded from the records differ.
    case(
        "field",
        &|dir| {
            let mut all = lines(dir);
            all[5] = all[5].replacen("\"action\":\"hold\"", "\"action\":\"long\"", 1);
            write_lines(dir, &all);
        },
        "row_hash does not match",
        &[],
    );
    // TC1: a row deleted.
    case(
        "deleted",
        &|dir| {
            let mut all = lines(dir);
            all.remove(7);
            write_lines(dir, &all);
        },
        "is missing (the records give it)",
        &[],
    );
    // TC2: two rows swapped.
    case(
        "swapped",
        &|dir| {
            let mut all = lines(dir);
            all.swap(3, 4);
            write_lines(dir, &all);
        },
        "prev_row_hash does not link",
        &[],
    );
    // TC3: the manifest's counts edited (valid JSON).
    case(
        "counts",
        &|dir| {
            let text = String::from_utf8(read(dir, "manifest.json")).unwrap();
            std::fs::write(dir.join("manifest.json"), text.replacen("\"fills\": 15", "\"fills\": 14", 1)).unwrap();
        },
        "manifest.json: counts",
        &[],
    );
    // TC4: the manifest's creation time edited: only the signature binds it.
    case(
        "created_at",
        &|dir| {
            let text = String::from_utf8(read(dir, "manifest.json")).unwrap();
            std::fs::write(dir.join("manifest.json"), text.replacen("\"created_at\": \"2", "\"created_at\": \"1", 1))
                .unwrap();
        },
        "does not sign this manifest.json",
        &["--pubkey", public],
    );
    // TC5: the signature replaced by another key's over the same checkpoint.
    let other = s.path("other.key");
    s.ledger.ok(&["audit", "keygen", "--name", "example.com/ledger", "--out", other.to_str().unwrap()]);
    let resigned = s.export("resigned", &["--sign", other.to_str().unwrap()]);
    case(
        "signature",
        &|dir| std::fs::copy(resigned.join("checkpoint.txt"), dir.join("checkpoint.txt")).map(drop).unwrap(),
        "no signature by key example.com/ledger",
        &["--pubkey", public],
    );
    // TC6: a record's byte flipped.
    case(
        "record",
        &|dir| {
            let mut records = read(dir, "records.bin");
            records[200] ^= 0x20;
            std::fs::write(dir.join("records.bin"), &records).unwrap();
        },
        "its hash does not match its bytes",
        &[],
    );
    // TC7: a file added.
    case("added", &|dir| std::fs::write(dir.join("notes.txt"), "x").unwrap(), "a file the manifest does not list", &[]);
    // TC8: unusable input is exit 2, not 1.
    let run = s.verify(&s.path("nowhere"), &[]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
}

/// One signed export of the small ledger, made once for the property test.
fn shared_export() -> &'static (Setup, PathBuf) {
    static SHARED: OnceLock<(Setup, PathBuf)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let s = setup();
        let dir = s.export("shared", &["--sign", s.key.to_str().unwrap()]);
        (s, dir)
    })
}

/// A way to tamper with an export.
#[derive(Debug, Clone)]
enum Tamper {
    /// Flip one bit of one byte of a file.
    Flip { file: usize, at: prop::sample::Index, bit: u8 },
    /// Remove one row.
    Delete(prop::sample::Index),
    /// Swap two different rows.
    Swap(prop::sample::Index, prop::sample::Index),
    /// Repeat one row after itself.
    Duplicate(prop::sample::Index),
    /// Change one number in the manifest by one.
    ManifestNumber(prop::sample::Index),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        4 => (0usize..4, any::<prop::sample::Index>(), 0u8..8).prop_map(|(file, at, bit)| Tamper::Flip { file, at, bit }),
        1 => any::<prop::sample::Index>().prop_map(Tamper::Delete),
        1 => (any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(|(a, b)| Tamper::Swap(a, b)),
        1 => any::<prop::sample::Index>().prop_map(Tamper::Duplicate),
        1 => any::<prop::sample::Index>().prop_map(Tamper::ManifestNumber),
    ]
}

/// Applies `tamper` to the export in `dir`; `false` when it changes nothing (two equal
/// rows swapped).
fn apply(dir: &Path, tamper: &Tamper) -> bool {
    let rows =
        || -> Vec<String> { String::from_utf8(read(dir, "rows.jsonl")).unwrap().lines().map(str::to_string).collect() };
    let write_rows = |rows: &[String]| std::fs::write(dir.join("rows.jsonl"), rows.join("\n") + "\n").unwrap();
    match tamper {
        Tamper::Flip { file, at, bit } => {
            let name = ["rows.jsonl", "records.bin", "manifest.json", "checkpoint.txt"][*file];
            let mut bytes = read(dir, name);
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            std::fs::write(dir.join(name), &bytes).unwrap();
        }
        Tamper::Delete(i) => {
            let mut all = rows();
            all.remove(i.index(all.len()));
            write_rows(&all);
        }
        Tamper::Swap(a, b) => {
            let mut all = rows();
            let (a, b) = (a.index(all.len()), b.index(all.len()));
            if all[a] == all[b] {
                return false;
            }
            all.swap(a, b);
            write_rows(&all);
        }
        Tamper::Duplicate(i) => {
            let mut all = rows();
            let i = i.index(all.len());
            all.insert(i, all[i].clone());
            write_rows(&all);
        }
        Tamper::ManifestNumber(i) => {
            let text = String::from_utf8(read(dir, "manifest.json")).unwrap();
            // Every number the manifest states (counts, seqs, sizes), each a `": N` run.
            let numbers: Vec<(usize, usize)> = text
                .match_indices(": ")
                .map(|(at, _)| at + 2)
                .filter(|&at| text.as_bytes()[at].is_ascii_digit())
                .map(|at| (at, at + text[at..].bytes().take_while(u8::is_ascii_digit).count()))
                .collect();
            let (from, to) = numbers[i.index(numbers.len())];
            let value: u64 = text[from..to].parse().unwrap();
            std::fs::write(dir.join("manifest.json"), format!("{}{}{}", &text[..from], value + 1, &text[to..]))
                .unwrap();
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any byte of any file of a signed export changed, a row removed, swapped or
    /// repeated, a number of the manifest changed: `ledger audit verify --pubkey` does
    /// not pass it.
    #[test]
    fn any_tampering_is_detected(tamper in tamper()) {
        let (s, clean) = shared_export();
        let dir = tempfile::tempdir().unwrap();
        copy_dir(clean, dir.path());
        prop_assume!(apply(dir.path(), &tamper));
        let run = s.verify(dir.path(), &["--pubkey", s.public.to_str().unwrap()]);
        prop_assert!(run.code == 1 || run.code == 2, "{tamper:?}: exit {}\n{}{}", run.code, run.stdout, run.stderr);
    }
}

#[test]
fn requests_that_cannot_be_met_are_refused_with_exit_2() {
    let s = setup();
    let out = s.path("out");
    let out = out.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["audit", "export", "--run", "9", "--out", out], "no run 9"),
        (&["audit", "export", "--run", "1", "--from", "100", "--to", "50", "--out", out], "no rows in the range"),
        (
            &["audit", "export", "--run", "1", "--from", "yesterday", "--out", out],
            "--from yesterday: neither a seq nor an RFC 3339 time",
        ),
        (
            &["audit", "export", "--run", "1", "--sign", "/nonexistent/key", "--out", out],
            "reading key /nonexistent/key",
        ),
        (&["audit", "keygen", "--name", "has space", "--out", out], "--name: key name"),
    ];
    for (args, expected) in cases {
        let run = s.ledger.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: expected {expected:?} in {}", run.stderr);
    }
    // An export never writes into a folder that holds something.
    std::fs::create_dir_all(s.path("full")).unwrap();
    std::fs::write(s.path("full").join("x"), "x").unwrap();
    let run = s.ledger.run(&["audit", "export", "--run", "1", "--out", s.path("full").to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("is not empty"), "{}", run.stderr);
}

#[test]
fn protective_exits_appear_with_their_reasons() {
    let ledger = small_ledger_with_exits();
    let out = ledger.dir.path().join("export");
    ledger.ok(&["audit", "export", "--run", "1", "--format", "csv", "--out", out.to_str().unwrap()]);
    let text = String::from_utf8(read(&out, "rows.csv")).unwrap();
    // TC0: an entry carries its bracket; its exits name it, their kind and their stop.
    assert!(text.contains(r#"""bracket"":{""stop_loss"":"#), "no bracket on the entry");
    assert!(text.contains(r#"""exit_kind"":""stop_loss"""#), "no stop-loss exit");
    assert!(text.contains(r#"""exit_kind"":""trailing_stop"""#), "no trailing stop");
    assert!(text.contains(r#"""origin"":""protective_exit"",""protects"":""r1-1"""#), "no exit of r1-1");
    // TC1: a trailing stop moved, with its reason and new stop.
    assert!(text.contains(r#"""reason"":""trailing 0.02 from the best price"#), "no amended trailing stop");
    assert!(text.contains(r#"""status"":""amended"",""stop_price"":"#), "no amended stop price");
    // TC2: the other exits canceled when one filled, saying why.
    assert!(text.contains("one-cancels-other"), "no one-cancels-other cancel");
    let ok = ledger.run(&["audit", "verify", out.to_str().unwrap()]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    if let Some(py) = python_verify(&[out.to_str().unwrap()]) {
        assert_eq!(py.code, 0, "{}{}", py.stdout, py.stderr);
    }
}

/// The small ledger's backtest with a stop-loss, a take-profit and a trailing stop on
/// every entry.
fn small_ledger_with_exits() -> Ledger {
    let ledger = Ledger::new();
    ledger.ok(&[
        "replay",
        "--data",
        "fixtures/spy-daily-1998-q1.csv",
        "--strategy",
        "sma-cross",
        "--param",
        "fast=2",
        "--param",
        "slow=5",
        "--stop-loss-pct",
        "0.02",
        "--take-profit-pct",
        "0.03",
        "--trailing-stop-pct",
        "0.02",
    ]);
    ledger
}
