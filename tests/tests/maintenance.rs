//! etcd's Maintenance API through etcdctl 3.4 and the etcd-client crate, real etcd 3.4.23 and
//! wasmraft side by side (3 members each, the same script):
//!
//! - `endpoint health` and `endpoint status` (table and json) with what differs by nature
//!   blanked (ids, ports, timings, sizes, raft indexes); `endpoint hashkv` equal on every
//!   member after writes, and its errors for a future and a compacted revision;
//! - `snapshot save`, then `snapshot restore` (etcdctl's for etcd, `wasmraft snapshot restore`
//!   with the same flags for wasmraft) into a new one-member cluster that serves the keys, and
//!   the restore's refusal of a damaged file and of an existing data dir;
//! - `defrag`;
//! - a NOSPACE alarm under a small `--quota-backend-bytes`: the write error, `alarm list`, the
//!   Status errors on every member, reads and deletes still served, then compaction, defrag and
//!   `alarm disarm`, after which writes work again;
//! - the same calls through the etcd-client crate (status, hash, hash_kv, alarm, defragment,
//!   and a snapshot stream whose last message is the sha256 of the rest).
//!
//! The hash values and sizes themselves differ between the two (different storage) and are
//! compared within each flavor only.

use std::path::Path;
use std::time::Duration;

use etcd_client::{AlarmAction, AlarmType, Client, GetOptions};
use sha2::Digest as _;
use wasmraft_tests::cluster::ClusterConfig;
use wasmraft_tests::etcdctl::{CmdOutput, Etcdctl};
use wasmraft_tests::member::{Flavor, Member, MemberConfig};

/// Small enough to fill in a second, larger than a fresh wasmraft state database (which holds
/// the KV guest's module).
const QUOTA: u64 = 4 << 20;

/// The outputs one flavor printed, by step, normalized.
struct Run {
    steps: Vec<(String, CmdOutput)>,
}

impl Run {
    fn push(&mut self, step: &str, out: CmdOutput) {
        self.steps.push((step.to_string(), out));
    }
}

/// Replaces every occurrence of each `from` with its `to`, after the usual normalization.
fn blank(mut o: CmdOutput, names: &[(String, String)]) -> CmdOutput {
    o = o.normalized();
    o.stdout = blank_str(&o.stdout, names);
    o.stderr = blank_str(&o.stderr, names);
    o
}

fn blank_str(s: &str, names: &[(String, String)]) -> String {
    names.iter().fold(s.to_string(), |s, (from, to)| s.replace(from, to))
}

/// The cells of an etcdctl table, with the cells of `columns` (by header) replaced by `<n>`;
/// the table's widths differ with the contents, so tables are compared cell by cell.
fn table_cells(text: &str, columns: &[&str]) -> String {
    let rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    let Some(header) = rows.first() else { return text.to_string() };
    let hidden: Vec<usize> =
        header.iter().enumerate().filter(|(_, h)| columns.contains(&h.as_str())).map(|(i, _)| i).collect();
    rows.iter()
        .enumerate()
        .map(|(r, row)| {
            row.iter()
                .enumerate()
                .map(|(i, c)| if r > 0 && hidden.contains(&i) && !c.is_empty() { "<n>".to_string() } else { c.clone() })
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// etcdctl's "took = 1.234ms" in `endpoint health`.
fn blank_took(s: &str) -> String {
    s.lines()
        .map(|l| match l.find("took = ") {
            Some(i) => format!("{}took = <t>", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Which member raises NOSPACE is a race in etcd (every member checks its own backend against
/// the quota when it applies a put, and the first to propose the alarm wins, though a second
/// member sometimes proposes its own before it sees the first), so alarm lines name "a member"
/// and a second alarm of the same kind folds into the first.
fn any_member_str(s: &str) -> String {
    (0..3).fold(s.to_string(), |s, i| s.replace(&format!("memberID:<id{i}>"), "memberID:<a member>"))
}

/// [`any_member_str`] on every line of stdout, repeated lines dropped.
fn any_member(mut o: CmdOutput) -> CmdOutput {
    let text = any_member_str(&o.stdout);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.dedup();
    let end = if text.ends_with('\n') { "\n" } else { "" };
    o.stdout = format!("{}{end}", lines.join("\n"));
    o
}

/// The lines of `s`, sorted: etcd lists alarms (and health answers) in no fixed order.
fn sorted_lines(s: &str) -> String {
    let mut lines: Vec<&str> = s.lines().collect();
    lines.sort();
    lines.join("\n")
}

/// A number that depends on how many writes fit under the quota (not the same for two
/// stores), as `<n>`.
fn blank_count(mut o: CmdOutput) -> CmdOutput {
    let mut out = String::new();
    let mut in_number = false;
    for ch in o.stdout.chars() {
        if ch.is_ascii_digit() {
            if !in_number {
                out.push_str("<n>");
            }
            in_number = true;
        } else {
            out.push(ch);
            in_number = false;
        }
    }
    o.stdout = out;
    o
}

/// `snapshot restore` of `file` into `data_dir` as the one member `name` of a new cluster.
fn restore(flavor: Flavor, file: &Path, data_dir: &Path, cfg: &MemberConfig) -> CmdOutput {
    let args = [
        format!("--data-dir={}", data_dir.display()),
        format!("--name={}", cfg.name),
        format!("--initial-cluster={}", cfg.cluster_entry()),
        format!("--initial-advertise-peer-urls={}", cfg.peer_url()),
        "--initial-cluster-token=restored".to_string(),
    ];
    let mut cmd = match flavor {
        Flavor::Etcd => {
            let mut c = std::process::Command::new(wasmraft_tests::etcdctl_bin());
            c.env("ETCDCTL_API", "3").arg("snapshot").arg("restore").arg(file);
            c
        }
        Flavor::Wasmraft => {
            let mut c = std::process::Command::new(wasmraft_tests::wasmraft_bin());
            c.arg("snapshot").arg("restore").arg(file);
            c
        }
    };
    let out = cmd.args(&args).output().expect("running snapshot restore");
    CmdOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn script(flavor: Flavor) -> Run {
    let mut run = Run { steps: Vec::new() };
    let mut c = ClusterConfig::new(flavor, 3).arg(format!("--quota-backend-bytes={QUOTA}")).start();
    let leader = c.wait_leader(Duration::from_secs(30));
    let ids: Vec<u64> = (0..3).map(|i| c.status(i).expect("status").member_id).collect();
    let mut names: Vec<(String, String)> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        names.push((format!("{id:x}"), format!("<id{i}>")));
        names.push((id.to_string(), format!("<id{i}>")));
        names.push((c.endpoint(i).trim_start_matches("http://").to_string(), format!("<addr{i}>")));
    }
    // Each reports its own version (wasmraft the release whose behaviour it implements; checked
    // below and in reported_version.rs), so the comparison leaves it out.
    names.push((flavor.reported_version().to_string(), "<version>".to_string()));
    let all = Etcdctl::new(c.endpoints().join(","));
    let one = |i: usize| Etcdctl::new(c.endpoint(i));
    for (k, v) in [("a", "1"), ("b", "2"), ("a", "3")] {
        run.push("put", blank(all.run(&["put", k, v]), &names));
    }

    // Health and status: what differs by nature (timings, sizes, indexes) is blanked.
    let mut health = blank(all.run(&["endpoint", "health"]), &names);
    // etcdctl prints the endpoints in the order their answers come, with the time each took.
    health.stderr = sorted_lines(&blank_took(&health.stderr));
    run.push("endpoint health", health);
    let mut status = blank(all.run(&["endpoint", "status", "-w", "table"]), &names);
    status.stdout =
        table_cells(&status.stdout, &["DB SIZE", "IS LEADER", "RAFT TERM", "RAFT INDEX", "RAFT APPLIED INDEX"]);
    run.push("endpoint status -w table", status);
    let json = all.run(&["endpoint", "status", "-w", "json"]);
    assert!(json.success(), "{flavor:?}: {}", json.render());
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).expect("status json");
    let shape: Vec<String> = parsed
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            let s = &e["Status"];
            let mut keys: Vec<&str> = s.as_object().expect("object").keys().map(String::as_str).collect();
            keys.sort();
            format!(
                "keys={keys:?} version={} leader_known={} revision={}",
                s["version"],
                s["leader"].as_u64().is_some_and(|l| ids.contains(&l)),
                s["header"]["revision"]
            )
        })
        .collect();
    run.push(
        "endpoint status -w json (shape)",
        blank(CmdOutput { code: json.code, stdout: shape.join("\n"), stderr: String::new() }, &names),
    );

    // HashKV: equal on every member once they applied the same writes.
    let hashes: Vec<String> = (0..3)
        .map(|i| {
            let out = one(i).run(&["endpoint", "hashkv", "-w", "json"]);
            let v: serde_json::Value = serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("{flavor:?} hashkv: {e}: {}", out.render()));
            assert_eq!(v[0]["HashKV"]["header"]["revision"], 4, "{flavor:?}");
            format!("{} {}", v[0]["HashKV"]["hash"], v[0]["HashKV"]["compact_revision"])
        })
        .collect();
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{flavor:?}: hashkv differs between members: {hashes:?}");
    run.push(
        "hashkv compact_revision",
        CmdOutput {
            code: Some(0),
            stdout: hashes[0].split(' ').nth(1).unwrap_or("").to_string(),
            stderr: String::new(),
        },
    );
    let mut hk = blank(all.run(&["endpoint", "hashkv", "-w", "table"]), &names);
    hk.stdout = table_cells(&hk.stdout, &["HASH"]);
    run.push("endpoint hashkv -w table", hk);
    run.push("hashkv future revision", blank(one(0).run(&["endpoint", "hashkv", "--rev=99"]), &names));
    let at3 = one(1).run(&["endpoint", "hashkv", "--rev=3", "-w", "json"]);
    run.push("compact 3", blank(all.run(&["compact", "3"]), &names));
    run.push("hashkv compacted revision", blank(one(0).run(&["endpoint", "hashkv", "--rev=2"]), &names));
    let after = one(1).run(&["endpoint", "hashkv", "--rev=3", "-w", "json"]);
    run.push("hashkv at the compaction revision", blank(after.clone(), &names));
    assert!(at3.success() && !after.success(), "{flavor:?}: {}\n{}", at3.render(), after.render());

    // Snapshot save, and a new one-member cluster restored from it.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("snap.db");
    let file_s = file.display().to_string();
    names.push((file_s.clone(), "<file>".to_string()));
    let save = one(leader).run(&["snapshot", "save", &file_s]);
    let mut save_out = blank(save.clone(), &names);
    // etcdctl's own log lines carry the size and the time it took.
    save_out.stderr =
        save_out.stderr.lines().filter(|l| !l.contains("\"level\":\"info\"")).collect::<Vec<_>>().join("\n");
    run.push("snapshot save", save_out);
    assert!(save.success(), "{flavor:?}: {}", save.render());
    let bytes = std::fs::read(&file).expect("saved snapshot");
    assert_eq!(bytes.len() % 512, 32, "{flavor:?}: a digest after whole 512-byte pages");
    let cfg = MemberConfig::new(flavor).name("r0");
    let damaged = dir.path().join("damaged.db");
    let mut flipped = bytes.clone();
    flipped[100] ^= 1;
    std::fs::write(&damaged, &flipped).expect("write damaged");
    let bad = restore(flavor, &damaged, &dir.path().join("bad"), &cfg);
    assert!(!bad.success() && bad.stderr.contains("expected sha256 ["), "{flavor:?}: {}", bad.render());
    run.push("restore damaged: exit code", CmdOutput { code: bad.code, stdout: String::new(), stderr: String::new() });
    let exists = restore(flavor, &file, dir.path(), &cfg);
    assert!(!exists.success(), "{flavor:?}: {}", exists.render());
    let existing = format!("data-dir {:?} exists", dir.path().display().to_string());
    assert!(exists.stderr.contains(&existing), "{flavor:?}: {}", exists.render());
    let mut restored_out = None;
    let mut restored = Member::spawn_prepared(cfg.clone().arg("--initial-cluster-token=restored"), |data_dir| {
        restored_out = Some(restore(flavor, &file, data_dir, &cfg));
    });
    let r = restored_out.expect("restore ran");
    assert!(r.success(), "{flavor:?} restore: {}", r.render());
    restored.wait_ready();
    let r_ctl = Etcdctl::new(restored.endpoint());
    run.push("restored: get", r_ctl.run(&["get", "--prefix", ""]));
    run.push("restored: put", r_ctl.run(&["put", "c", "4"]));
    run.push("restored: member list", {
        let mut o = r_ctl.run(&["member", "list", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("member list json");
        o.stdout = format!("members={} name={}", v["members"].as_array().map_or(0, Vec::len), v["members"][0]["name"]);
        o
    });
    drop(restored);

    // Defragment every member.
    run.push("defrag", blank(all.run(&["defrag"]), &names));

    // NOSPACE: fill past the quota through member 0.
    let rt = wasmraft_tests::runtime();
    let (fill_error, revision) = rt.block_on(async {
        let mut client = Client::connect([c.endpoint(0)], None).await.expect("connect");
        let value = vec![b'x'; 100 * 1024];
        for i in 0..400 {
            if let Err(e) = client.put(format!("big{i}"), value.clone(), None).await {
                let rev = client.get("a", None).await.expect("read while capped").header().expect("header").revision();
                return (e.to_string(), rev);
            }
        }
        panic!("{flavor:?}: 40 MB of puts never exceeded a {QUOTA}-byte quota");
    });
    run.push(
        "put past the quota (etcd-client)",
        CmdOutput { code: Some(1), stdout: String::new(), stderr: fill_error },
    );
    let mut list = blank(all.run(&["alarm", "list"]), &names);
    list.stdout = sorted_lines(&list.stdout);
    run.push("alarm list", any_member(list));
    for i in 0..3 {
        run.push("put while capped", blank(one(i).run(&["put", "x", "y"]), &names));
    }
    run.push("txn with a put while capped", blank(one(1).run_with_stdin(&["txn"], Some("\n\nput x y\n\n")), &names));
    run.push("get while capped", blank(one(2).run(&["get", "a"]), &names));
    // Every member lists every alarm in its Status errors (in no fixed order).
    let status = all.run(&["endpoint", "status", "-w", "json"]);
    let v: serde_json::Value =
        serde_json::from_str(&status.stdout).unwrap_or_else(|e| panic!("{flavor:?}: {e}: {}", status.render()));
    let errors: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            let mut errs: Vec<String> = e["Status"]["errors"]
                .as_array()
                .map_or(Vec::new(), |a| a.iter().map(|x| any_member_str(&blank_str(&x.to_string(), &names))).collect());
            errs.sort();
            errs.dedup();
            errs.join(", ")
        })
        .collect();
    let errors = CmdOutput { code: status.code, stdout: errors.join("\n"), stderr: status.stderr };
    run.push("endpoint status errors while capped", any_member(blank(errors, &names)));
    run.push("delete while capped", blank_count(blank(all.run(&["del", "--prefix", "big"]), &names)));
    let rev = (revision + 1).to_string();
    run.push("compact", blank_count(blank(all.run(&["compact", &rev]), &names)));
    run.push("defrag to free space", blank(all.run(&["defrag"]), &names));
    let mut disarm = blank(all.run(&["alarm", "disarm"]), &names);
    disarm.stdout = sorted_lines(&disarm.stdout);
    run.push("alarm disarm", any_member(disarm));
    run.push("alarm list after disarm", blank(all.run(&["alarm", "list"]), &names));
    run.push("put after disarm", blank(all.run(&["put", "x", "y"]), &names));

    // The etcd-client crate: the same calls, checked within the flavor.
    rt.block_on(async {
        let mut clients: Vec<Client> = Vec::new();
        for i in 0..3 {
            clients.push(Client::connect([c.endpoint(i)], None).await.expect("connect"));
        }
        let mut kv_hashes = Vec::new();
        for (i, client) in clients.iter_mut().enumerate() {
            let st = client.status().await.expect("status");
            assert_eq!(st.version(), flavor.reported_version(), "{flavor:?}");
            assert!(st.errors().is_empty(), "{flavor:?} member {i}: {:?}", st.errors());
            assert!(ids.contains(&st.leader()), "{flavor:?}");
            client.hash().await.expect("hash");
            kv_hashes.push(client.hash_kv(0).await.expect("hash_kv").hash());
        }
        assert!(kv_hashes.iter().all(|h| *h == kv_hashes[0]), "{flavor:?}: {kv_hashes:?}");
        let compacted = clients[0].hash_kv(2).await.expect_err("compacted revision");
        assert!(
            compacted.to_string().contains("etcdserver: mvcc: required revision has been compacted"),
            "{flavor:?}: {compacted}"
        );
        let alarms = clients[0].alarm(AlarmAction::Get, AlarmType::None, None).await.expect("alarm get");
        assert!(alarms.alarms().is_empty(), "{flavor:?}");
        clients[1].defragment().await.expect("defragment");
        let mut stream = clients[2].snapshot().await.expect("snapshot");
        let mut blobs = Vec::new();
        while let Some(m) = stream.message().await.expect("snapshot message") {
            blobs.push((m.remaining_bytes(), m.blob().to_vec()));
        }
        let (last_remaining, digest) = blobs.pop().expect("a digest message");
        assert_eq!((last_remaining, digest.len()), (0, 32), "{flavor:?}");
        let data: Vec<u8> = blobs.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        assert!(blobs.iter().all(|(_, b)| b.len() <= 32 * 1024), "{flavor:?}: etcd's 32 KiB messages");
        assert_eq!(blobs.last().map(|(r, _)| *r), Some(0), "{flavor:?}: remaining_bytes counts down to 0");
        assert_eq!(
            sha2::Sha256::digest(&data)[..],
            digest[..],
            "{flavor:?}: the last message is the sha256 of the rest"
        );
        let got = clients[0].get("a", Some(GetOptions::new())).await.expect("get");
        assert_eq!(got.kvs()[0].value(), b"3");
    });
    run
}

#[test]
fn maintenance_matches_etcd() {
    let etcd = script(Flavor::Etcd);
    let ours = script(Flavor::Wasmraft);
    let mut diffs = Vec::new();
    assert_eq!(etcd.steps.len(), ours.steps.len());
    for ((step, e), (_, w)) in etcd.steps.iter().zip(&ours.steps) {
        if e != w {
            diffs.push(format!("== {step}\n-- etcd\n{}\n-- wasmraft\n{}", e.render(), w.render()));
        }
    }
    if std::env::var_os("WASMRAFT_COMPAT_DUMP").is_some() {
        for (step, o) in &ours.steps {
            eprintln!("== {step}\n{}", o.render());
        }
    }
    assert!(diffs.is_empty(), "outputs differ:\n{}", diffs.join("\n"));
    // The script exercised what it says, against etcd itself.
    let find = |name: &str| etcd.steps.iter().find(|(s, _)| s == name).map(|(_, o)| o.clone()).expect(name);
    assert!(find("put while capped").stderr.contains("etcdserver: mvcc: database space exceeded"));
    assert!(find("alarm list").stdout.contains("alarm:NOSPACE"));
    assert!(find("endpoint status errors while capped").stdout.contains("alarm:NOSPACE"));
    assert!(find("alarm disarm").stdout.contains("alarm:NOSPACE"));
    assert!(find("alarm list after disarm").stdout.is_empty());
    assert!(find("put after disarm").success());
    assert!(find("restored: get").stdout.contains("a\n3\nb\n2"));
    assert!(find("hashkv compacted revision").stderr.contains("required revision has been compacted"));
    assert!(find("hashkv future revision").stderr.contains("required revision is a future revision"));
    assert!(find("defrag").stdout.contains("Finished defragmenting etcd member"));
}
