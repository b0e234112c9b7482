//! Go's `time.ParseDuration` syntax, which etcd's duration flags take (`10m`, `1.5s`, `1h30m`,
//! `500ms`), so such flags accept what etcd accepts; and Go's `Duration.String`, which etcd's log
//! lines print durations with (`1h0m0s`, `2s`, `100ms`), so the same lines read the same. Both
//! are `wasmraft_proto::go`'s, shared with the member core and the API.

pub use wasmraft_proto::go::{format_duration as format, parse_duration as parse};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn parses_what_go_parses() {
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert!(parse("10").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse("1x").is_err());
        assert!(parse("").is_err());
    }

    /// What Go's `fmt.Sprint(time.Duration)` prints for the same values.
    #[test]
    fn formats_what_go_prints() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1500), "1.5µs"),
            (Duration::from_millis(100), "100ms"),
            (Duration::from_micros(2500), "2.5ms"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_millis(200), "200ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
            (Duration::from_secs(72 * 3600 + 61), "72h1m1s"),
            (Duration::from_nanos(3_600_000_000_001), "1h0m0.000000001s"),
        ];
        for (d, go) in cases {
            assert_eq!(format(d), go, "{d:?}");
        }
    }
}
