//! `lincheck <history.json> [--max-steps N] [--max-seconds S]`: re-checks a history the
//! fault harness saved, and prints the report.
//!
//! Exit status: 0 linearizable, 1 not linearizable, 2 anything else (undecided within the
//! budget, an invalid history, a bad file or bad arguments): a script can tell "the store is
//! wrong" from "the check could not say".

use std::process::ExitCode;
use std::time::Duration;

use wasmraft_lincheck::{Budget, CheckResult, History, check};

const USAGE: &str = "usage: lincheck <history.json> [--max-steps N] [--max-seconds S]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("lincheck: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<ExitCode, String> {
    let mut path = None;
    let mut budget = Budget::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--max-steps" => budget.max_steps = Some(number(args.next(), &arg)?),
            "--max-seconds" => budget.max_time = Some(Duration::from_secs(number(args.next(), &arg)?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            _ if path.is_none() && !arg.starts_with('-') => path = Some(arg),
            _ => return Err(format!("unexpected argument {arg:?}\n{USAGE}")),
        }
    }
    let path = path.ok_or(USAGE)?;
    let json = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let history = History::from_json(&json).map_err(|e| format!("{path}: not a history: {e}"))?;
    let report = check(&history, budget).map_err(|e| format!("{path}: {e}"))?;
    print!("{report}");
    Ok(match report.result {
        CheckResult::Linearizable => ExitCode::SUCCESS,
        CheckResult::NotLinearizable(_) => ExitCode::from(1),
        CheckResult::Timeout { .. } => ExitCode::from(2),
    })
}

fn number(value: Option<String>, flag: &str) -> Result<u64, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a number"))?;
    value.parse().map_err(|_| format!("{flag}: {value:?} is not a number"))
}
