//! Terse constructors for hand-written histories: `(process, key, ..., invoked, completed)`.

use wasmraft_lincheck::{Budget, Call, CheckResult, History, Operation, Outcome, Report, Return, Value, check};

pub fn read(process: u64, key: &str, saw: Option<Value>, invoked_ns: u64, completed_ns: u64) -> Operation {
    ok(process, Call::Read { key: key.into() }, Return::Read(saw), invoked_ns, completed_ns)
}

pub fn write(process: u64, key: &str, value: Value, invoked_ns: u64, completed_ns: u64) -> Operation {
    ok(process, Call::Write { key: key.into(), value }, Return::Write, invoked_ns, completed_ns)
}

pub fn cas(
    process: u64,
    key: &str,
    expect: Option<Value>,
    new: Value,
    succeeded: bool,
    invoked_ns: u64,
    completed_ns: u64,
) -> Operation {
    ok(process, Call::Cas { key: key.into(), expect, new }, Return::Cas(succeeded), invoked_ns, completed_ns)
}

pub fn write_unknown(process: u64, key: &str, value: Value, invoked_ns: u64) -> Operation {
    Operation { process, call: Call::Write { key: key.into(), value }, invoked_ns, outcome: Outcome::Unknown }
}

pub fn cas_unknown(process: u64, key: &str, expect: Option<Value>, new: Value, invoked_ns: u64) -> Operation {
    Operation { process, call: Call::Cas { key: key.into(), expect, new }, invoked_ns, outcome: Outcome::Unknown }
}

pub fn read_unknown(process: u64, key: &str, invoked_ns: u64) -> Operation {
    Operation { process, call: Call::Read { key: key.into() }, invoked_ns, outcome: Outcome::Unknown }
}

pub fn write_failed(process: u64, key: &str, value: Value, invoked_ns: u64) -> Operation {
    Operation { process, call: Call::Write { key: key.into(), value }, invoked_ns, outcome: Outcome::Failed }
}

fn ok(process: u64, call: Call, returned: Return, invoked_ns: u64, completed_ns: u64) -> Operation {
    Operation { process, call, invoked_ns, outcome: Outcome::Ok { returned, completed_ns } }
}

pub fn history(operations: Vec<Operation>) -> History {
    History { operations }
}

pub fn report(operations: Vec<Operation>) -> Report {
    check(&history(operations), Budget::default()).expect("a valid history")
}

pub fn result(operations: Vec<Operation>) -> CheckResult {
    report(operations).result
}
