//! What the server itself is set up to do, read from `INFO` and
//! `CONFIG GET`: its version and role, its memory limit and eviction
//! policy, its persistence, and a cluster's state.

use std::collections::HashMap;

use cached_redis_core::admin::redis;
use cached_redis_core::admin::{Admin, AdminError, Node};

use super::Checks;
use super::access::text;
use crate::output;

/// `INFO`'s `field:value` lines.
type Info = HashMap<String, String>;

pub fn node(admin: &Admin, node: &Node, label: &str, checks: &mut Checks) {
    let info = match admin.query_on(node, &redis::cmd("INFO")).wait() {
        Ok(reply) => text(reply).map(|text| parse_info(&text)),
        Err(err) if err.is_denied() => {
            checks.warn(
                "server",
                format!("{label}INFO is not permitted: version, role, persistence and memory use not checked"),
            );
            None
        }
        Err(err) => {
            checks.warn("server", format!("{label}cannot read INFO: {err}"));
            None
        }
    };
    if let Some(info) = &info {
        version_and_role(info, label, checks);
    }
    limits(admin, node, info.as_ref(), label, checks);
    if let Some(info) = &info {
        persistence(admin, node, info, label, checks);
        memory(info, label, checks);
    }
}

fn parse_info(text: &str) -> Info {
    text.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(field, value)| (field.to_owned(), value.to_owned()))
        .collect()
}

fn version_and_role(info: &Info, label: &str, checks: &mut Checks) {
    let version = info.get("redis_version").map_or("?", String::as_str);
    let role = info.get("role").map_or("?", String::as_str);
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(0);
    let detail = format!("{label}Redis {version}, role {role}");
    if role == "slave" {
        checks.fail(
            "server",
            format!("{detail}: a replica refuses every cache write (READONLY); point the cache at the primary"),
        );
    } else if (1..4).contains(&major) {
        checks.fail(
            "server",
            format!("{detail}: the cache needs UNLINK, Redis 4 or newer"),
        );
    } else if (4..6).contains(&major) {
        checks.warn(
            "server",
            format!(
                "{detail}: without ACL users or CLIENT TRACKING (near-cache); Redis 6 or newer"
            ),
        );
    } else {
        checks.ok("server", detail);
    }
}

/// One `CONFIG GET` parameter: `Ok(None)` if the server has no such
/// parameter, an error if it will not say (`NOPERM`, or a managed
/// service that renamed `CONFIG`).
fn config_get(admin: &Admin, node: &Node, parameter: &str) -> Result<Option<String>, AdminError> {
    let reply = admin
        .query_on(node, redis::cmd("CONFIG").arg("GET").arg(parameter))
        .wait()?;
    let values: HashMap<String, String> =
        redis::from_redis_value(reply).map_err(|_| AdminError::UnexpectedReply("CONFIG GET"))?;
    Ok(values.get(parameter).cloned())
}

/// `maxmemory` and `maxmemory-policy`, from `CONFIG GET`, else from `INFO`.
fn limits(admin: &Admin, node: &Node, info: Option<&Info>, label: &str, checks: &mut Checks) {
    let from_info = |field: &str| info.and_then(|info| info.get(field).cloned());
    let read = |parameter: &str, field: &str| match config_get(admin, node, parameter) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => from_info(field).ok_or_else(|| "not reported".to_owned()),
        Err(err) => from_info(field).ok_or_else(|| {
            if err.is_denied() {
                "CONFIG GET and INFO are not permitted".to_owned()
            } else {
                err.to_string()
            }
        }),
    };
    match read("maxmemory", "maxmemory").map(|v| v.parse::<u64>()) {
        Ok(Ok(0)) => checks.warn(
            "maxmemory",
            format!(
                "{label}0 (unbounded): Redis grows until the host runs out of memory; set maxmemory"
            ),
        ),
        Ok(Ok(limit)) => checks.ok("maxmemory", format!("{label}{}", output::bytes(limit))),
        Ok(Err(_)) => checks.warn("maxmemory", format!("{label}cannot read: not a number")),
        Err(why) => checks.warn("maxmemory", format!("{label}cannot read: {why}")),
    }
    match read("maxmemory-policy", "maxmemory_policy") {
        Ok(policy) if policy == "noeviction" => checks.warn(
            "eviction",
            format!(
                "{label}maxmemory-policy noeviction: once memory is full every cache write fails with OOM; \
                 use allkeys-lru or allkeys-lfu"
            ),
        ),
        Ok(policy) if policy.starts_with("volatile-") => checks.ok(
            "eviction",
            format!("{label}maxmemory-policy {policy} (every cache key has a TTL, so it can be evicted)"),
        ),
        Ok(policy) => checks.ok("eviction", format!("{label}maxmemory-policy {policy}")),
        Err(why) => checks.warn("eviction", format!("{label}cannot read maxmemory-policy: {why}")),
    }
}

fn persistence(admin: &Admin, node: &Node, info: &Info, label: &str, checks: &mut Checks) {
    let field = |name: &str| info.get(name).map(String::as_str);
    if field("loading") == Some("1") {
        checks.warn(
            "persistence",
            format!("{label}loading its dataset: commands fail with LOADING until it is done"),
        );
    }
    if field("rdb_last_bgsave_status") == Some("err") {
        checks.warn(
            "persistence",
            format!(
                "{label}the last RDB snapshot failed: with stop-writes-on-bgsave-error yes, \
                 Redis refuses writes (MISCONF)"
            ),
        );
    }
    if field("aof_last_write_status") == Some("err") {
        checks.warn(
            "persistence",
            format!("{label}the last AOF write failed: Redis may refuse writes"),
        );
    }
    let rdb = match config_get(admin, node, "save") {
        Ok(Some(save)) if save.trim().is_empty() => "RDB snapshots off".to_owned(),
        Ok(Some(save)) => format!("RDB snapshots on (save {save})"),
        _ => "RDB schedule unknown (CONFIG GET not permitted)".to_owned(),
    };
    if field("aof_enabled") == Some("1") {
        checks.warn(
            "persistence",
            format!(
                "{label}{rdb}, AOF on: every cache write is written to disk too; \
                 a cache rarely needs that (appendonly no)"
            ),
        );
    } else {
        checks.ok("persistence", format!("{label}{rdb}, AOF off"));
    }
}

fn memory(info: &Info, label: &str, checks: &mut Checks) {
    let number = |name: &str| info.get(name).and_then(|v| v.parse::<u64>().ok());
    let Some(used) = number("used_memory") else {
        return;
    };
    let share = match number("maxmemory") {
        Some(limit) if limit > 0 => format!(
            " of {} ({:.0} %)",
            output::bytes(limit),
            used as f64 * 100.0 / limit as f64
        ),
        _ => String::new(),
    };
    checks.ok(
        "memory",
        format!(
            "{label}{} used{share}; {} keys evicted, {} expired since start",
            output::bytes(used),
            output::count(number("evicted_keys").unwrap_or(0)),
            output::count(number("expired_keys").unwrap_or(0)),
        ),
    );
}

/// `cluster_state` on every primary.
pub fn cluster(admin: &Admin, nodes: &[Node], checks: &mut Checks) {
    let (mut bad, mut read) = (Vec::new(), 0);
    for node in nodes {
        let reply = admin
            .query_on(node, redis::cmd("CLUSTER").arg("INFO"))
            .wait();
        let state = match reply.map(text) {
            Ok(Some(info)) => parse_info(&info)
                .get("cluster_state")
                .cloned()
                .unwrap_or_else(|| "unknown".to_owned()),
            Ok(None) => "unreadable".to_owned(),
            Err(err) => {
                checks.warn(
                    "cluster",
                    format!("{node}: cannot read CLUSTER INFO: {err}"),
                );
                continue;
            }
        };
        read += 1;
        if state != "ok" {
            bad.push(format!("{node}: cluster_state {state}"));
        }
    }
    if !bad.is_empty() {
        checks.fail("cluster", bad.join("; "));
    } else if read > 0 {
        checks.ok("cluster", format!("cluster_state ok on {read} primaries"));
    }
}
