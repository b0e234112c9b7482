//! `--wasmraft-print-flags`: every flag's resolved value and where it came from, as JSON, after
//! the same checks a start makes. It shows what a command line, environment or config file
//! amounts to without starting a member; the flag table test compares it with `etcd --help`.

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

use super::Config;
use super::load::{Source, is_extra};

pub fn json(cmd: &Command, matches: &ArgMatches, source: &Source, config: &Config) -> String {
    let mut flags = serde_json::Map::new();
    for arg in cmd.get_arguments() {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else { continue };
        if is_extra(long) {
            continue;
        }
        let value = matches
            .get_raw(id)
            .map(|vals| vals.map(|v| v.to_string_lossy().into_owned()).collect::<Vec<_>>().join(","));
        let from = match (matches.value_source(id), source) {
            (Some(ValueSource::DefaultValue), _) => "default",
            (Some(ValueSource::CommandLine), Source::File(_)) => "config-file",
            (Some(ValueSource::CommandLine), Source::CommandLine(env)) if env.contains(id) => "env",
            (Some(ValueSource::CommandLine), _) => "command-line",
            (Some(ValueSource::EnvVariable), _) => "env",
            _ => "unset",
        };
        flags.insert(long.to_string(), serde_json::json!({ "value": value, "source": from }));
    }
    let initial_cluster = config
        .initial_cluster
        .iter()
        .flat_map(|(name, urls)| urls.iter().map(move |u| format!("{name}={}", super::trim_url(u))))
        .collect::<Vec<_>>()
        .join(",");
    let doc = serde_json::json!({
        "flags": flags,
        // The defaults etcd derives from other flags.
        "resolved": {
            "data-dir": config.data_dir.display().to_string(),
            "initial-cluster": initial_cluster,
            "advertise-client-urls": config.advertise_client_urls.iter().map(super::trim_url).collect::<Vec<_>>().join(","),
        },
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
