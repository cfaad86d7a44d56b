//! `--clickhouse-cluster NAME`: the database on a ClickHouse cluster of the servers'
//! `remote_servers` configuration. The servers come from `system.clusters` of the server in
//! the URL; each is reached over HTTP on the URL's port, with the URL's credentials and
//! database. Every table is created on every server as `TABLE_local`, with a `Distributed`
//! table named `TABLE` in front (`schema.rs`); reads and writes go through the distributed
//! tables of the URL's server, retention and sizes through each server's local tables.
//!
//! Without ZooKeeper (ClickHouse 18.16 needs it for `ON CLUSTER` DDL), Switchyard runs the
//! DDL on each server itself; docs/SCALE.md says what a current release changes.

use super::client::{Client, Cluster, Timeouts};
use super::sql::{render, Value};
use super::url::ClickHouseUrl;
use crate::store::StoreError;

/// The longest cluster name accepted.
const MAX_NAME: usize = 128;

/// Whether a cluster name is one `remote_servers` may hold: ASCII letters, digits, `_`, `-`
/// and `.`, at most [`MAX_NAME`].
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A client for the URL's server that reads and writes the cluster `name`'s distributed
/// tables and knows every server of it; refuses a name that `system.clusters` lacks.
pub fn connect(url: &ClickHouseUrl, timeouts: Timeouts, name: &str) -> Result<Client, StoreError> {
    if !plain_name(name) {
        return Err(StoreError::Backend(format!(
            "--clickhouse-cluster {:?} is not a cluster name (ASCII letters, digits, _, - and ., at most {MAX_NAME})",
            name.chars().take(MAX_NAME).collect::<String>()
        )));
    }
    let entry = Client::new(url, timeouts);
    #[derive(serde::Deserialize)]
    struct Host {
        host_name: String,
    }
    let q = render(
        "SELECT host_name FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num",
        &[Value::Str(name)],
    )
    .map_err(|e| StoreError::Backend(e.to_string()))?;
    let hosts: Vec<Host> = entry.system_rows(&q)?;
    if hosts.is_empty() {
        return Err(StoreError::Backend(format!(
            "cluster {name:?} is not in system.clusters of the ClickHouse server at {url} (its remote_servers configuration)"
        )));
    }
    let mut names: Vec<String> = Vec::new();
    for h in hosts {
        let host = url_host(&h.host_name);
        if !names.contains(&host) {
            names.push(host);
        }
    }
    let servers = names
        .into_iter()
        .map(|host| {
            let mut u = url.clone();
            u.host = host;
            Client::new(&u, timeouts)
        })
        .collect();
    Ok(entry.in_cluster(Cluster {
        name: name.to_string(),
        servers,
    }))
}

/// A host name of `system.clusters` as a URL writes it (an IPv6 address in brackets).
fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod unit {
    #[test]
    fn cluster_names_are_plain_and_hosts_url_ready() {
        assert!(super::plain_name("switchyard_2shards.eu-1"));
        for bad in ["", "a b", "x'); DROP", "c\u{e9}", &"n".repeat(129)] {
            assert!(!super::plain_name(bad), "{bad:?}");
        }
        assert_eq!(super::url_host("ch-1.internal"), "ch-1.internal");
        assert_eq!(super::url_host("::1"), "[::1]");
    }
}
