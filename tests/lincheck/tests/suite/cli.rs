//! The `lincheck` binary: verdict on stdout, and an exit status a script can branch on.

use std::path::PathBuf;
use std::process::{Command, Output};

use wasmraft_lincheck::History;

use crate::ops::*;

fn run_on(name: &str, history: &History) -> Output {
    let path: PathBuf = std::env::temp_dir().join(format!("lincheck-{}-{name}.json", std::process::id()));
    std::fs::write(&path, history.to_json().expect("serializable")).expect("temp file");
    let output = Command::new(env!("CARGO_BIN_EXE_lincheck")).arg(&path).output().expect("runs");
    let _ = std::fs::remove_file(&path);
    output
}

#[test]
fn exit_status_tells_the_verdict() {
    let good = run_on("good", &history(vec![write(1, "x", 1, 0, 10), read(2, "x", Some(1), 20, 30)]));
    assert_eq!(good.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&good.stdout).starts_with("LINEARIZABLE"));

    let bad = run_on("bad", &history(vec![write(1, "x", 1, 0, 10), read(2, "x", None, 20, 30)]));
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("read (absent), but the key holds 1"));

    let invalid = run_on("invalid", &history(vec![read(2, "x", None, 30, 20)]));
    assert_eq!(invalid.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("invalid history"));

    let missing = Command::new(env!("CARGO_BIN_EXE_lincheck")).arg("/nonexistent/h.json").output().expect("runs");
    assert_eq!(missing.status.code(), Some(2));
}
