//! The Rust `etcd-client` crate sees the same answers from wasmraft as from real etcd 3.4.
//!
//! One sequence of KV operations runs through `etcd-client` against a fresh real etcd and a fresh
//! wasmraft. Every response is rendered field by field — header revision, each key-value's key,
//! value, create/mod revision, version and lease, `more`, `count`, `deleted`, `prev_kv(s)`,
//! `succeeded`, nested txn responses with their own headers, and for errors the gRPC code and
//! message — and the renderings must be equal. The only blanked fields are the top-level
//! header's cluster id, member id and raft term, rendered as `<id>` when non-zero (zero must stay
//! zero: etcd leaves them zero in txn sub-responses).
//!
//! This covers request fields etcdctl 3.4 cannot send (`count_only`, min/max mod/create revision
//! filters, `ignore_lease`, range compares, nested txns, binary keys), and limits (`--max-txn-ops`,
//! `--max-request-bytes` defaults).
//!
//! `WASMRAFT_TEST_SUBJECT=etcd` makes the subject a second real etcd, to validate the test.

use std::fmt::Write as _;
use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KeyValue, PutOptions,
    ResponseHeader, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
use wasmraft_tests::{Flavor, Member, MemberConfig};

type Res<T> = Result<T, etcd_client::Error>;

/// Renders responses so that equal renderings mean equal responses (minus header ids).
trait Render {
    fn render(&self, out: &mut String, top: bool);
}

fn header(out: &mut String, h: Option<&ResponseHeader>, top: bool) {
    match h {
        None => out.push_str("header=None"),
        Some(h) => {
            let id = |v: u64| {
                if top && v != 0 { "<id>".to_string() } else { v.to_string() }
            };
            let _ = write!(
                out,
                "header{{cluster_id={} member_id={} revision={} raft_term={}}}",
                id(h.cluster_id()),
                id(h.member_id()),
                h.revision(),
                id(h.raft_term())
            );
        }
    }
}

fn bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => format!("{s:?}"),
        Err(_) => format!("0x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
    }
}

fn kv(out: &mut String, kv: &KeyValue) {
    let _ = write!(
        out,
        "\n    kv{{key={} value={} create={} mod={} version={} lease={}}}",
        bytes(kv.key()),
        bytes(kv.value()),
        kv.create_revision(),
        kv.mod_revision(),
        kv.version(),
        kv.lease()
    );
}

impl Render for etcd_client::PutResponse {
    fn render(&self, out: &mut String, top: bool) {
        out.push_str("Put ");
        header(out, self.header(), top);
        match self.prev_key() {
            Some(p) => {
                out.push_str(" prev_kv=");
                kv(out, p);
            }
            None => out.push_str(" prev_kv=None"),
        }
    }
}

impl Render for etcd_client::GetResponse {
    fn render(&self, out: &mut String, top: bool) {
        out.push_str("Range ");
        header(out, self.header(), top);
        let _ = write!(out, " more={} count={} kvs={}:", self.more(), self.count(), self.kvs().len());
        for k in self.kvs() {
            kv(out, k);
        }
    }
}

impl Render for etcd_client::DeleteResponse {
    fn render(&self, out: &mut String, top: bool) {
        out.push_str("DeleteRange ");
        header(out, self.header(), top);
        let _ = write!(out, " deleted={} prev_kvs={}:", self.deleted(), self.prev_kvs().len());
        for k in self.prev_kvs() {
            kv(out, k);
        }
    }
}

impl Render for etcd_client::CompactionResponse {
    fn render(&self, out: &mut String, top: bool) {
        out.push_str("Compaction ");
        header(out, self.header(), top);
    }
}

impl Render for etcd_client::TxnResponse {
    fn render(&self, out: &mut String, top: bool) {
        out.push_str("Txn ");
        header(out, self.header(), top);
        let responses = self.op_responses();
        let _ = write!(out, " succeeded={} responses={}:", self.succeeded(), responses.len());
        for r in responses {
            let mut sub = String::new();
            match &r {
                TxnOpResponse::Put(p) => p.render(&mut sub, false),
                TxnOpResponse::Get(g) => g.render(&mut sub, false),
                TxnOpResponse::Delete(d) => d.render(&mut sub, false),
                TxnOpResponse::Txn(t) => t.render(&mut sub, false),
            }
            let _ = write!(out, "\n  - {}", sub.replace('\n', "\n    "));
        }
    }
}

fn render<T: Render>(r: &Res<T>) -> String {
    let mut out = String::new();
    match r {
        Ok(v) => v.render(&mut out, true),
        Err(etcd_client::Error::GRpcStatus(s)) => {
            let _ = write!(out, "ERROR grpc code={:?} message={:?}", s.code(), s.message());
        }
        Err(e) => {
            let _ = write!(out, "ERROR (not a gRPC status) {e}");
        }
    }
    out
}

/// The recorded (label, rendering) pairs of one run.
#[derive(Default)]
struct Log(Vec<(String, String)>);

impl Log {
    fn rec<T: Render>(&mut self, label: impl Into<String>, r: Res<T>) -> Res<T> {
        self.0.push((label.into(), render(&r)));
        r
    }
}

fn go() -> GetOptions {
    GetOptions::new()
}

/// The operation sequence. Deterministic from an empty store, so revisions match on both.
async fn run(endpoint: String) -> Log {
    let opts = ConnectOptions::new().with_timeout(Duration::from_secs(10)).with_connect_timeout(Duration::from_secs(5));
    let mut c = Client::connect([endpoint.as_str()], Some(opts)).await.expect("connect");
    let mut l = Log::default();

    // --- put ---
    let _ = l.rec("put foo bar", c.put("foo", "bar", None).await); // 2
    let _ = l.rec("put foo bar2 prev_kv", c.put("foo", "bar2", Some(PutOptions::new().with_prev_key())).await); // 3
    let _ = l.rec(
        "put foo ignore_value prev_kv",
        c.put("foo", "", Some(PutOptions::new().with_ignore_value().with_prev_key())).await,
    ); // 4
    let _ = l.rec("put foo ignore_lease", c.put("foo", "bar3", Some(PutOptions::new().with_ignore_lease())).await); // 5
    let _ = l.rec("put nokey ignore_value", c.put("nokey", "", Some(PutOptions::new().with_ignore_value())).await);
    let _ = l.rec("put nokey ignore_lease", c.put("nokey", "v", Some(PutOptions::new().with_ignore_lease())).await);
    let _ = l.rec("put foo ignore_value+value", c.put("foo", "x", Some(PutOptions::new().with_ignore_value())).await); // value given with ignore_value
    let _ = l.rec("put empty key", c.put("", "x", None).await);
    let _ = l.rec("put unknown lease", c.put("foo", "x", Some(PutOptions::new().with_lease(0x1234))).await);
    let _ = l.rec("put binary", c.put(vec![0u8, 0xff, 0x10], vec![0xffu8, 0, 1], None).await); // 6
    let _ = l.rec("put empty value", c.put("empty", "", Some(PutOptions::new().with_prev_key())).await); // 7
    let _ = l.rec("get empty value", c.get("empty", None).await);
    let _ = l.rec("get binary", c.get(vec![0u8, 0xff, 0x10], None).await);

    // --- keys with distinct version/create/mod/value orders ---
    for (k, v) in [
        ("k1", "c"),
        ("k2", "a"),
        ("k3", "b"),
        ("k2", "a2"),
        ("k4", "0"),
        ("k4", "00"),
        ("k1", "c2"),
        ("k4", "000"),
        ("k1", "c3"),
        ("k4", "0000"),
    ] {
        let _ = l.rec(format!("put {k} {v}"), c.put(k, v, None).await);
    }
    for k in ["a", "b", "c", "c/1", "c/2", "d", "x1", "x2", "y"] {
        let _ = l.rec(format!("put {k}"), c.put(k, format!("v-{k}"), None).await);
    }

    // --- get ---
    let _ = l.rec("get foo", c.get("foo", None).await);
    let _ = l.rec("get missing", c.get("missing", None).await);
    let _ = l.rec("get prefix k", c.get("k", Some(go().with_prefix())).await);
    let _ = l.rec("get range [a,c)", c.get("a", Some(go().with_range("c"))).await);
    let _ = l.rec("get range [c,c/2)", c.get("c", Some(go().with_range("c/2"))).await);
    let _ = l.rec("get range empty [c,a)", c.get("c", Some(go().with_range("a"))).await);
    let _ = l.rec("get from_key x1", c.get("x1", Some(go().with_from_key())).await);
    let _ = l.rec("get all_keys", c.get("", Some(go().with_all_keys())).await);
    let _ = l.rec("get prefix nothing", c.get("nothing", Some(go().with_prefix())).await);
    let _ = l.rec("get prefix k limit 2", c.get("k", Some(go().with_prefix().with_limit(2))).await);
    let _ = l.rec("get prefix k limit 4", c.get("k", Some(go().with_prefix().with_limit(4))).await);
    let _ = l.rec("get prefix k limit 5", c.get("k", Some(go().with_prefix().with_limit(5))).await);
    let _ = l.rec("get from_key c limit 3", c.get("c", Some(go().with_from_key().with_limit(3))).await);
    let _ = l.rec("get prefix k limit -1", c.get("k", Some(go().with_prefix().with_limit(-1))).await);
    for (tn, t) in [
        ("KEY", SortTarget::Key),
        ("VERSION", SortTarget::Version),
        ("CREATE", SortTarget::Create),
        ("MOD", SortTarget::Mod),
        ("VALUE", SortTarget::Value),
    ] {
        for (on, o) in [("NONE", SortOrder::None), ("ASCEND", SortOrder::Ascend), ("DESCEND", SortOrder::Descend)] {
            let _ = l.rec(
                format!("get prefix k sort {tn} {on}"),
                c.get("k", Some(go().with_prefix().with_sort(t, o))).await,
            );
        }
        let _ = l.rec(
            format!("get prefix k sort {tn} DESCEND limit 2"),
            c.get("k", Some(go().with_prefix().with_sort(t, SortOrder::Descend).with_limit(2))).await,
        );
    }
    let _ = l.rec("get prefix k keys_only", c.get("k", Some(go().with_prefix().with_keys_only())).await);
    let _ = l.rec("get prefix k count_only", c.get("k", Some(go().with_prefix().with_count_only())).await);
    let _ = l.rec(
        "get prefix k count_only limit 1",
        c.get("k", Some(go().with_prefix().with_count_only().with_limit(1))).await,
    );
    let _ = l.rec("get all count_only", c.get("", Some(go().with_all_keys().with_count_only())).await);
    let _ = l.rec("get missing count_only", c.get("missing", Some(go().with_count_only())).await);
    let _ = l.rec("get prefix k serializable", c.get("k", Some(go().with_prefix().with_serializable())).await);
    let _ = l.rec("get foo serializable", c.get("foo", Some(go().with_serializable())).await);
    let _ = l.rec("get prefix k min_mod 12", c.get("k", Some(go().with_prefix().with_min_mod_revision(12))).await);
    let _ = l.rec("get prefix k max_mod 12", c.get("k", Some(go().with_prefix().with_max_mod_revision(12))).await);
    let _ = l.rec(
        "get prefix k min_create 10 max_create 11",
        c.get("k", Some(go().with_prefix().with_min_create_revision(10).with_max_create_revision(11))).await,
    );
    let _ = l.rec(
        "get prefix k min_mod 12 limit 1",
        c.get("k", Some(go().with_prefix().with_min_mod_revision(12).with_limit(1))).await,
    );
    let _ = l.rec(
        "get prefix k min_mod 12 count_only",
        c.get("k", Some(go().with_prefix().with_min_mod_revision(12).with_count_only())).await,
    );

    // --- historical reads ---
    let _ = l.rec("get foo rev 2", c.get("foo", Some(go().with_revision(2))).await);
    let _ = l.rec("get foo rev 1", c.get("foo", Some(go().with_revision(1))).await);
    let _ = l.rec("get prefix k rev 13", c.get("k", Some(go().with_prefix().with_revision(13))).await);
    let _ = l.rec(
        "get prefix k rev 17 serializable sort VERSION",
        c.get(
            "k",
            Some(
                go().with_prefix()
                    .with_revision(17)
                    .with_serializable()
                    .with_sort(SortTarget::Version, SortOrder::Descend),
            ),
        )
        .await,
    );
    let current = l
        .rec("get foo (current revision)", c.get("foo", None).await)
        .ok()
        .and_then(|r| r.header().map(|h| h.revision()))
        .unwrap_or(0);
    let _ = l.rec("get foo rev current", c.get("foo", Some(go().with_revision(current))).await);
    let _ = l.rec("get foo rev current+1", c.get("foo", Some(go().with_revision(current + 1))).await);
    let _ = l.rec(
        "get foo rev 100000 serializable",
        c.get("foo", Some(go().with_revision(100000).with_serializable())).await,
    );
    let _ = l.rec("get foo rev -1", c.get("foo", Some(go().with_revision(-1))).await);

    // --- txn ---
    let _ = l.rec("put t1 v1", c.put("t1", "v1", None).await);
    let _ = l.rec("put t1 v2", c.put("t1", "v2", None).await);
    let t1_mod = current + 2;
    let _ = l.rec("put t3", c.put("t3", "gone-soon", None).await);
    let txn = Txn::new()
        .when([
            Compare::value("t1", CompareOp::Equal, "v2"),
            Compare::version("t1", CompareOp::Equal, 2),
            Compare::create_revision("foo", CompareOp::Equal, 2),
            Compare::mod_revision("t1", CompareOp::Greater, t1_mod - 1),
            Compare::lease("t1", CompareOp::Equal, 0),
        ])
        .and_then([
            TxnOp::put("t2", "success", Some(PutOptions::new().with_prev_key())),
            TxnOp::get("t1", None),
            TxnOp::delete("t3", Some(DeleteOptions::new().with_prev_key())),
            TxnOp::get("k", Some(go().with_prefix().with_sort(SortTarget::Value, SortOrder::Descend).with_limit(2))),
        ])
        .or_else([TxnOp::put("t2", "failure", None)]);
    let _ = l.rec("txn all compares true", c.txn(txn).await);
    let txn = Txn::new()
        .when([Compare::value("t1", CompareOp::Equal, "nope")])
        .and_then([TxnOp::put("t2", "success-again", None)])
        .or_else([
            TxnOp::put("t2", "failure", Some(PutOptions::new().with_prev_key())),
            TxnOp::get("t", Some(go().with_prefix().with_keys_only())),
            TxnOp::get("t1", Some(go().with_revision(t1_mod - 1))),
            TxnOp::delete("nokey", Some(DeleteOptions::new().with_prev_key())),
            TxnOp::get("k", Some(go().with_prefix().with_count_only())),
        ]);
    let _ = l.rec("txn value compare false", c.txn(txn).await);
    for (name, cmp) in [
        ("version != 2", Compare::version("t1", CompareOp::NotEqual, 2)),
        ("version < 3", Compare::version("t1", CompareOp::Less, 3)),
        ("create < t1_mod", Compare::create_revision("t1", CompareOp::Less, t1_mod)),
        ("create > t1_mod", Compare::create_revision("t1", CompareOp::Greater, t1_mod)),
        ("mod = t1_mod", Compare::mod_revision("t1", CompareOp::Equal, t1_mod)),
        ("mod != t1_mod", Compare::mod_revision("t1", CompareOp::NotEqual, t1_mod)),
        ("value > v1", Compare::value("t1", CompareOp::Greater, "v1")),
        ("value < v1", Compare::value("t1", CompareOp::Less, "v1")),
        ("value != v2", Compare::value("t1", CompareOp::NotEqual, "v2")),
        ("missing version = 0", Compare::version("missing", CompareOp::Equal, 0)),
        ("missing create = 0", Compare::create_revision("missing", CompareOp::Equal, 0)),
        ("missing value = ''", Compare::value("missing", CompareOp::Equal, "")),
        ("missing mod > 0", Compare::mod_revision("missing", CompareOp::Greater, 0)),
        ("range k* version > 0", Compare::version("k", CompareOp::Greater, 0).with_prefix()),
        ("range k* version > 1", Compare::version("k", CompareOp::Greater, 1).with_prefix()),
        ("range [k1,k3) mod < 1000", Compare::mod_revision("k1", CompareOp::Less, 1000).with_range("k3")),
        ("lease != 0", Compare::lease("t1", CompareOp::NotEqual, 0)),
    ] {
        let txn = Txn::new().when([cmp]).and_then([TxnOp::get("t1", None)]).or_else([TxnOp::get("t2", None)]);
        let _ = l.rec(format!("txn read-only {name}"), c.txn(txn).await);
    }
    let nested = Txn::new()
        .when([Compare::version("t2", CompareOp::Greater, 0)])
        .and_then([TxnOp::put("t4", "nested", None), TxnOp::get("t4", None)])
        .or_else([TxnOp::put("t4", "nested-failure", None)]);
    let txn = Txn::new()
        .when([Compare::value("t1", CompareOp::Equal, "v2")])
        .and_then([TxnOp::put("t5", "outer", None), TxnOp::txn(nested)]);
    let _ = l.rec("txn nested", c.txn(txn).await);
    let _ = l.rec("txn empty", c.txn(Txn::new()).await);
    let _ = l.rec("txn only success ops", c.txn(Txn::new().and_then([TxnOp::put("t6", "x", None)])).await);
    let _ = l.rec("txn only failure ops", c.txn(Txn::new().or_else([TxnOp::put("t6", "y", None)])).await);
    let _ = l.rec(
        "txn duplicate put",
        c.txn(Txn::new().and_then([TxnOp::put("t7", "a", None), TxnOp::put("t7", "b", None)])).await,
    );
    let _ = l.rec(
        "txn put + delete same key",
        c.txn(Txn::new().and_then([TxnOp::put("t7", "a", None), TxnOp::delete("t7", None)])).await,
    );
    let _ = l.rec(
        "txn put + delete overlapping range",
        c.txn(
            Txn::new()
                .and_then([TxnOp::put("t7", "a", None), TxnOp::delete("t", Some(DeleteOptions::new().with_prefix()))]),
        )
        .await,
    );
    let _ = l.rec(
        "txn future rev get",
        c.txn(Txn::new().and_then([TxnOp::put("t7", "a", None), TxnOp::get("t7", Some(go().with_revision(100000)))]))
            .await,
    );
    let _ = l.rec(
        "txn ignore_value missing",
        c.txn(Txn::new().and_then([TxnOp::put("t8", "", Some(PutOptions::new().with_ignore_value()))])).await,
    );
    let too_many: Vec<TxnOp> = (0..129).map(|i| TxnOp::put(format!("many/{i:03}"), "x", None)).collect();
    let _ = l.rec("txn 129 ops (default --max-txn-ops 128)", c.txn(Txn::new().and_then(too_many)).await);
    let max_ops: Vec<TxnOp> = (0..128).map(|i| TxnOp::get(format!("many/{i:03}"), None)).collect();
    let _ = l.rec("txn 128 ops", c.txn(Txn::new().and_then(max_ops)).await);
    let _ = l.rec("get prefix t", c.get("t", Some(go().with_prefix())).await);

    // --- request size (default --max-request-bytes 1.5 MiB) ---
    let _ = l.rec("put 1 MiB value", c.put("big", vec![b'x'; 1 << 20], None).await);
    let _ = l.rec("put 1.6 MiB value", c.put("big", vec![b'y'; 1_600_000], None).await);
    let _ = l.rec("get big count_only", c.get("big", Some(go().with_count_only())).await);
    let _ = l.rec("delete big", c.delete("big", None).await);

    // --- delete ---
    let _ = l.rec("delete missing", c.delete("missing", None).await);
    let _ = l.rec("delete foo", c.delete("foo", None).await);
    let _ = l.rec("delete k4 prev_kv", c.delete("k4", Some(DeleteOptions::new().with_prev_key())).await);
    let _ =
        l.rec("delete range [a,c)", c.delete("a", Some(DeleteOptions::new().with_range("c").with_prev_key())).await);
    let _ = l.rec("delete prefix c", c.delete("c", Some(DeleteOptions::new().with_prefix())).await);
    let _ = l.rec(
        "delete prefix nothing",
        c.delete("nothing", Some(DeleteOptions::new().with_prefix().with_prev_key())).await,
    );
    let _ = l.rec(
        "delete from_key x2 prev_kv",
        c.delete("x2", Some(DeleteOptions::new().with_from_key().with_prev_key())).await,
    );
    let _ =
        l.rec("delete prefix k prev_kv", c.delete("k", Some(DeleteOptions::new().with_prefix().with_prev_key())).await);
    let _ = l.rec("delete prefix many", c.delete("many/", Some(DeleteOptions::new().with_prefix())).await);
    let _ = l.rec("get all", c.get("", Some(go().with_all_keys())).await);

    // --- compaction ---
    let _ = l.rec("compact 20", c.compact(20, None).await);
    let _ = l.rec("get all rev 20", c.get("", Some(go().with_all_keys().with_revision(20))).await);
    let _ = l.rec("get foo rev 19", c.get("foo", Some(go().with_revision(19))).await);
    let _ = l.rec(
        "get prefix k rev 5 serializable",
        c.get("k", Some(go().with_prefix().with_revision(5).with_serializable())).await,
    );
    let _ = l.rec("compact 20 again", c.compact(20, None).await);
    let _ = l.rec("compact 10", c.compact(10, None).await);
    let _ = l.rec("compact 100000", c.compact(100000, None).await);
    let _ = l.rec("compact 25 physical", c.compact(25, Some(CompactionOptions::new().with_physical())).await);
    let _ = l.rec("get all rev 24", c.get("", Some(go().with_all_keys().with_revision(24))).await);
    let _ = l.rec(
        "txn get compacted rev",
        c.txn(Txn::new().and_then([TxnOp::get("k1", Some(go().with_revision(24)))])).await,
    );
    let _ = l.rec(
        "get all rev 25 count_only",
        c.get("", Some(go().with_all_keys().with_revision(25).with_count_only())).await,
    );
    let _ = l.rec("put after compaction", c.put("after", "compaction", Some(PutOptions::new().with_prev_key())).await);
    let _ = l.rec("delete all prev_kv", c.delete("", Some(DeleteOptions::new().with_all_keys().with_prev_key())).await);
    let _ = l.rec("get all at end", c.get("", Some(go().with_all_keys())).await);
    l
}

#[test]
fn etcd_client_sees_the_same_as_against_real_etcd() {
    let subject_flavor = Flavor::subject();
    let mut reference = Member::spawn(MemberConfig::new(Flavor::Etcd));
    let mut subject = Member::spawn(MemberConfig::new(subject_flavor));
    reference.wait_ready();
    subject.wait_ready();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (r, s) = rt.block_on(async { tokio::join!(run(reference.endpoint()), run(subject.endpoint())) });

    if std::env::var_os("WASMRAFT_COMPAT_DUMP").is_some() {
        for ((label, a), (_, b)) in r.0.iter().zip(&s.0) {
            eprintln!("## {label}\n etcd: {a}\n {subject_flavor}: {b}");
        }
    }

    assert_eq!(r.0.len(), s.0.len());
    let mut diffs = Vec::new();
    for (i, ((label, a), (_, b))) in r.0.iter().zip(&s.0).enumerate() {
        if a != b {
            diffs.push(format!("#{i} {label}\n  etcd:     {a}\n  {subject_flavor}: {b}"));
        }
    }
    // Sanity: the run must have exercised both outcomes against the reference.
    assert!(r.0.iter().any(|(_, x)| x.starts_with("ERROR grpc")), "no error case reached the reference");
    assert!(r.0.iter().filter(|(_, x)| !x.starts_with("ERROR")).count() > 100, "too few successful operations");
    assert!(
        diffs.is_empty(),
        "{} of {} etcd-client operations differ between etcd and {subject_flavor}:\n\n{}",
        diffs.len(),
        r.0.len(),
        diffs.join("\n\n")
    );
    eprintln!("{} etcd-client operations, identical results on etcd and {subject_flavor}", r.0.len());
}
