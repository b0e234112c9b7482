//! etcdctl 3.4 prints the same against wasmraft as against real etcd 3.4.
//!
//! One script of etcdctl commands runs against a fresh real etcd (the reference) and a fresh
//! wasmraft (the subject). Outputs are compared after blanking only what legitimately differs
//! between two servers (header cluster/member ids and raft term, and the timestamp/target in
//! etcdctl's client log lines — see `wasmraft_tests::etcdctl::normalize`). Everything else —
//! stdout, stderr, exit code — must be identical. All differences are collected and reported
//! together in one failure, each with the command and both outputs.
//!
//! The script is deterministic: both members start empty, so every revision is the same on both.
//! Steps marked `ok`/`err` are also checked against the reference, so the script provably
//! exercises what it claims (a typo'd flag cannot silently turn a test of `--prefix` into a test
//! of etcdctl's usage text).
//!
//! `WASMRAFT_COMPAT_DUMP=1` prints every command with both raw outputs.
//!
//! `WASMRAFT_TEST_SUBJECT=etcd` runs the subject as a second real etcd — the comparison must
//! then be clean, which validates the script and the normalization themselves.

use wasmraft_tests::{CmdOutput, Etcdctl, Flavor, Member, MemberConfig};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Exit code 0 against the reference.
    Ok,
    /// Non-zero exit against the reference.
    Err,
}

struct Step {
    args: Vec<String>,
    stdin: Option<String>,
    expect: Expect,
}

impl Step {
    fn describe(&self) -> String {
        let mut s = format!("etcdctl {}", self.args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "));
        if let Some(input) = &self.stdin {
            s.push_str(&format!("  <<< {input:?}"));
        }
        s
    }
}

fn shell_quote(a: &str) -> String {
    if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_=./:,".contains(c)) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

#[derive(Default)]
struct Script(Vec<Step>);

impl Script {
    fn step(&mut self, expect: Expect, args: &[&str], stdin: Option<&str>) {
        self.0.push(Step {
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: stdin.map(String::from),
            expect,
        });
    }
    fn ok(&mut self, args: &[&str]) {
        self.step(Expect::Ok, args, None);
    }
    fn err(&mut self, args: &[&str]) {
        self.step(Expect::Err, args, None);
    }
    fn txn_ok(&mut self, args: &[&str], stdin: &str) {
        self.step(Expect::Ok, args, Some(stdin));
    }
    fn txn_err(&mut self, args: &[&str], stdin: &str) {
        self.step(Expect::Err, args, Some(stdin));
    }
}

/// The script. Revisions in comments are what a fresh etcd reaches after each write.
fn script() -> Script {
    let mut s = Script::default();

    // --- put -------------------------------------------------------------------------------
    s.ok(&["put", "foo", "bar"]); // rev 2: create("foo") = 2 for the txn compares below
    s.ok(&["put", "foo", "bar2", "--prev-kv"]); // 3
    s.ok(&["put", "foo", "--ignore-value"]); // 4, value stays bar2
    s.ok(&["put", "foo", "--ignore-value", "--prev-kv", "-w", "json"]); // 5
    s.err(&["put", "nokey", "--ignore-value"]); // key not found
    s.err(&["put", "", "x"]); // key is not provided
    s.err(&["put", "foo", "x", "--lease=1234"]); // requested lease not found
    s.ok(&["put", "foo", "bar3", "-w", "json"]); // 6
    s.ok(&["put", "foo", "bar4", "--prev-kv", "-w", "json"]); // 7
    s.ok(&["put", "sp ace", "multi word value"]); // 8

    // --- get of one key ----------------------------------------------------------------------
    s.ok(&["get", "foo"]);
    s.ok(&["get", "foo", "-w", "json"]);
    s.ok(&["get", "foo", "-w", "fields"]);
    s.ok(&["get", "foo", "--hex"]);
    s.ok(&["get", "sp ace"]);
    s.ok(&["get", "nokey"]);
    s.ok(&["get", "nokey", "-w", "json"]);
    s.ok(&["get", "nokey", "-w", "fields"]);
    s.ok(&["get", "foo", "--print-value-only"]);
    s.ok(&["get", "foo", "--keys-only"]);
    s.ok(&["get", "foo", "--consistency=s"]);
    s.ok(&["get", "foo", "--consistency=s", "-w", "json"]);
    s.ok(&["get", "foo", "--consistency=l", "-w", "json"]);

    // --- keys for ranges and sorting ---------------------------------------------------------
    // Distinct versions, create and mod revisions and values, each ordered differently from
    // the keys, so every --sort-by target gives its own order.
    s.ok(&["put", "k1", "c"]); // 9
    s.ok(&["put", "k2", "a"]); // 10
    s.ok(&["put", "k3", "b"]); // 11
    s.ok(&["put", "k2", "a2"]); // 12
    s.ok(&["put", "k4", "0"]); // 13
    s.ok(&["put", "k4", "00"]); // 14
    s.ok(&["put", "k1", "c2"]); // 15
    s.ok(&["put", "k4", "000"]); // 16
    s.ok(&["put", "k1", "c3"]); // 17
    s.ok(&["put", "k4", "0000"]); // 18
    // versions: k1=3 k2=2 k3=1 k4=4; mod: k3 < k2 < k1 < k4; value: k4 < k2 < k3 < k1
    for key in ["a", "b", "c", "c/1", "c/2", "d", "x1", "x2", "y"] {
        s.ok(&["put", key, &format!("v-{key}")]); // 19..=27
    }

    s.ok(&["get", "--prefix", "k"]);
    s.ok(&["get", "--prefix", "k", "-w", "json"]);
    s.ok(&["get", "a", "c"]); // [a, c): a, b
    s.ok(&["get", "a", "c", "-w", "json"]);
    s.ok(&["get", "c", "c/2"]);
    s.ok(&["get", "--prefix", "c"]);
    s.ok(&["get", "--prefix", "c/"]);
    s.ok(&["get", "--prefix", "nothing-here"]);
    s.ok(&["get", "--prefix", "nothing-here", "-w", "json"]);
    s.ok(&["get", "--from-key", "x1"]);
    s.ok(&["get", "--from-key", "x1", "-w", "json"]);
    s.ok(&["get", "--from-key", ""]);
    s.ok(&["get", "--prefix", ""]);
    s.ok(&["get", "--from-key", "zzz"]);
    s.ok(&["get", "--prefix", "k", "--limit", "2"]);
    s.ok(&["get", "--prefix", "k", "--limit", "2", "-w", "json"]); // more: true, count: 4
    s.ok(&["get", "--prefix", "k", "--limit", "4", "-w", "json"]); // more: false
    s.ok(&["get", "--from-key", "c", "--limit", "3", "-w", "json"]);
    s.ok(&["get", "a", "z", "--limit", "1", "--keys-only"]);

    for target in ["KEY", "VERSION", "CREATE", "MODIFY", "VALUE"] {
        for order in ["ASCEND", "DESCEND"] {
            s.ok(&["get", "--prefix", "k", &format!("--sort-by={target}"), &format!("--order={order}")]);
        }
    }
    s.ok(&["get", "--prefix", "k", "--sort-by=MODIFY"]); // default order
    s.ok(&["get", "--prefix", "k", "--order=DESCEND"]); // default target (KEY)
    s.ok(&["get", "--prefix", "k", "--sort-by=VALUE", "--order=DESCEND", "--limit", "2", "-w", "json"]);
    s.ok(&["get", "--prefix", "k", "--sort-by=VERSION", "--order=ASCEND", "--limit", "3"]);
    s.ok(&["get", "--from-key", "b", "--sort-by=CREATE", "--order=DESCEND", "--limit", "3"]);
    s.err(&["get", "--prefix", "k", "--sort-by=BOGUS"]);
    s.err(&["get", "--prefix", "k", "--order=UP"]);

    s.ok(&["get", "--prefix", "k", "--keys-only"]);
    s.ok(&["get", "--prefix", "k", "--keys-only", "-w", "json"]);
    s.ok(&["get", "--prefix", "k", "--print-value-only"]);
    s.ok(&["get", "--prefix", "k", "--print-value-only", "--sort-by=VALUE"]);
    // etcdctl 3.4 has no --count-only (3.5 added it): both fail the same, client-side. The
    // count is compared through -w json's "count" instead.
    s.err(&["get", "--prefix", "k", "--count-only"]);
    s.ok(&["get", "--prefix", "k", "--consistency=s"]);
    s.ok(&["get", "--prefix", "", "--consistency=s", "-w", "json"]);

    // --- historical reads ------------------------------------------------------------------
    s.ok(&["get", "foo", "--rev=2"]);
    s.ok(&["get", "foo", "--rev=3", "-w", "json"]);
    s.ok(&["get", "foo", "--rev=1"]); // before foo existed
    s.ok(&["get", "--prefix", "k", "--rev=12"]);
    s.ok(&["get", "--prefix", "k", "--rev=12", "-w", "json"]);
    s.ok(&["get", "--prefix", "k", "--rev=16", "--sort-by=VERSION", "--order=DESCEND"]);
    s.ok(&["get", "k1", "--rev=16", "--consistency=s", "-w", "json"]);
    s.ok(&["get", "foo", "--rev=27"]); // the current revision
    s.err(&["get", "foo", "--rev=28"]); // future revision
    s.err(&["get", "foo", "--rev=100000", "-w", "json"]);

    // --- txn ---------------------------------------------------------------------------------
    s.ok(&["put", "t1", "v1"]); // 28
    s.ok(&["put", "t1", "v2"]); // 29
    s.ok(&["put", "t3", "gone-soon"]); // 30
    // success branch: value, version, create, mod compares all true
    s.txn_ok(
        &["txn"],
        "value(\"t1\") = \"v2\"\nversion(\"t1\") = \"2\"\ncreate(\"foo\") = \"2\"\nmod(\"t1\") > \"28\"\n\nput t2 success\nget t1\ndel t3\n\nput t2 failure\n\n",
    ); // 31
    s.ok(&["get", "--prefix", "t", "-w", "json"]);
    // failure branch
    s.txn_ok(
        &["txn"],
        "value(\"t1\") = \"nope\"\n\nput t2 success-again\n\nput t2 failure\nget --prefix t\nget t1 --rev=28\ndel --prev-kv nokey\n\n",
    ); // 32
    s.ok(&["get", "t2"]);
    // json, both branches
    s.txn_ok(&["txn", "-w", "json"], "version(\"t1\") != \"2\"\n\nput t2 x\n\nget t1\nget --prefix t --keys-only\n\n");
    s.txn_ok(
        &["txn", "-w", "json"],
        "create(\"t1\") < \"29\"\nmod(\"t2\") = \"32\"\nvalue(\"t1\") > \"v1\"\n\nput t4 y\ndel --prefix t3\nget --prefix t\n\nput t4 z\n\n",
    ); // 33
    s.txn_ok(&["txn", "-w", "json"], "version(\"missing\") = \"0\"\ncreate(\"missing\") = \"0\"\n\nget missing\n\n\n");
    s.txn_ok(&["txn", "-w", "json"], "mod(\"foo\") < \"3\"\n\n\nput t5 f\ndel --prev-kv t4\n\n"); // 34
    s.txn_ok(&["txn"], "\nput t6 empty-compares\n\n\n"); // 35
    s.txn_ok(&["txn"], "value(\"t6\") = \"empty-compares\"\n\n\n\n"); // no ops at all
    s.txn_ok(&["txn", "-w", "json"], "value(\"t6\") = \"other\"\n\n\n\n");
    s.txn_err(&["txn"], "\nput t7 a\nput t7 b\n\n\n"); // duplicate key given in txn request
    s.txn_err(&["txn"], "\nput t7 a\ndel t7\n\n\n");
    s.txn_err(&["txn"], "bad(\"t1\") = \"2\"\n\n\n\n"); // malformed, client side
    s.txn_err(&["txn"], "\nput t7 a\nget --prefix t7 --rev=100000\n\n\n"); // whole txn fails: future rev
    s.ok(&["get", "--prefix", "t", "-w", "json"]);

    // --- del ---------------------------------------------------------------------------------
    s.ok(&["del", "nokey"]);
    s.ok(&["del", "nokey", "-w", "json"]);
    s.ok(&["del", "foo"]); // 36
    s.ok(&["del", "--prev-kv", "k4"]); // 37
    s.ok(&["del", "--prev-kv", "k3", "-w", "json"]); // 38
    s.ok(&["del", "a", "c"]); // 39: a, b
    s.ok(&["del", "--prefix", "c"]); // 40: c, c/1, c/2
    s.ok(&["del", "--prefix", "nothing-here"]);
    s.ok(&["del", "--from-key", "x2", "--prev-kv"]); // 41: x2, y
    s.ok(&["del", "--prefix", "k", "--prev-kv", "-w", "json"]); // 42: k1, k2
    s.ok(&["get", "--prefix", "", "-w", "json"]);

    // --- compaction ---------------------------------------------------------------------------
    s.ok(&["get", "x1", "-w", "json"]); // shows the current revision
    s.ok(&["compaction", "20"]);
    s.ok(&["get", "--prefix", "", "--rev=20", "-w", "json"]); // the compacted revision itself
    s.err(&["get", "foo", "--rev=19"]); // required revision has been compacted
    s.err(&["get", "--prefix", "k", "--rev=5", "-w", "json"]);
    s.err(&["compaction", "20"]);
    s.err(&["compaction", "10"]);
    s.err(&["compaction", "100000"]); // future revision
    s.ok(&["compaction", "--physical", "25"]);
    s.ok(&["compaction", "26", "-w", "json"]);
    s.err(&["get", "k1", "--rev=25", "--consistency=s"]);
    s.ok(&["get", "--prefix", "", "--rev=30"]);
    s.ok(&["put", "after", "compaction", "-w", "json"]);
    s.ok(&["get", "--from-key", "", "-w", "json"]);
    s
}

fn run_script(ctl: &Etcdctl, script: &Script) -> Vec<CmdOutput> {
    script
        .0
        .iter()
        .map(|step| {
            let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
            ctl.run_with_stdin(&args, step.stdin.as_deref())
        })
        .collect()
}

#[test]
fn etcdctl_output_matches_real_etcd() {
    let version = Etcdctl::new("http://127.0.0.1:1").run(&["version"]);
    assert!(
        version.stdout.contains("etcdctl version: 3.4."),
        "this test compares etcdctl 3.4 output; found:\n{}",
        version.render()
    );

    let subject_flavor = Flavor::subject();
    // Start both, then wait for both: the two start-ups overlap.
    let mut reference = Member::spawn(MemberConfig::new(Flavor::Etcd));
    let mut subject = Member::spawn(MemberConfig::new(subject_flavor));
    reference.wait_ready();
    subject.wait_ready();

    let script = script();
    let (ref_out, sub_out) = std::thread::scope(|s| {
        let r = s.spawn(|| run_script(&Etcdctl::new(reference.endpoint()), &script));
        let t = s.spawn(|| run_script(&Etcdctl::new(subject.endpoint()), &script));
        (r.join().expect("reference run panicked"), t.join().expect("subject run panicked"))
    });

    // The script must do what it says against the reference, or the comparison proves little.
    let mut script_errors = Vec::new();
    for (step, out) in script.0.iter().zip(&ref_out) {
        let bad = match step.expect {
            Expect::Ok => !out.success(),
            Expect::Err => out.success() || out.code.is_none(),
        };
        if bad {
            script_errors.push(format!(
                "{} — expected {:?} against real etcd, got:\n{}",
                step.describe(),
                step.expect,
                out.render()
            ));
        }
    }
    assert!(
        script_errors.is_empty(),
        "the script itself is wrong (against real etcd):\n\n{}",
        script_errors.join("\n")
    );

    if std::env::var_os("WASMRAFT_COMPAT_DUMP").is_some() {
        for (i, (step, (r, t))) in script.0.iter().zip(ref_out.iter().zip(&sub_out)).enumerate() {
            eprintln!(
                "#{i}: {}\n--- etcd ---\n{}--- {subject_flavor} ---\n{}",
                step.describe(),
                r.render(),
                t.render()
            );
        }
    }

    let mut diffs = Vec::new();
    for (i, ((step, r), t)) in script.0.iter().zip(&ref_out).zip(&sub_out).enumerate() {
        let (r, t) = (r.normalized(), t.normalized());
        if r != t {
            diffs.push(format!(
                "#{i}: {}\n--- etcd ---\n{}--- {subject_flavor} ---\n{}",
                step.describe(),
                r.render(),
                t.render()
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} etcdctl commands differ between etcd and {subject_flavor} (after normalizing header ids):\n\n{}",
        diffs.len(),
        script.0.len(),
        diffs.join("\n")
    );
    eprintln!("{} etcdctl commands, identical output on etcd and {subject_flavor}", script.0.len());
}
