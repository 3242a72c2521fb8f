//! How the tool reaches Redis and what it may do there: latency, TLS,
//! the user, and every command's permission.

use std::time::{Duration, Instant};

use cached_redis_core::admin::redis::{self, Value};
use cached_redis_core::admin::{Admin, Node, Verdict};

use super::Checks;
use crate::output;

/// PINGs per node.
const PINGS: usize = 5;

/// A few PINGs per node, judged against the deadline the service's calls
/// have (`CACHE_REDIS_TIMEOUT`). A refused PING (`NOPERM`) still times a
/// round trip: the server answered.
pub fn latency(admin: &Admin, nodes: &[Node], deadline: Duration, checks: &mut Checks) {
    let mut times = Vec::with_capacity(PINGS * nodes.len());
    let mut refused = false;
    for node in nodes {
        for _ in 0..PINGS {
            let started = Instant::now();
            match admin.query_on(node, &redis::cmd("PING")).wait() {
                Ok(_) => times.push(started.elapsed()),
                Err(err) if err.is_denied() => {
                    times.push(started.elapsed());
                    refused = true;
                }
                Err(err) => {
                    checks.fail("latency", format!("PING to {node} failed: {err}"));
                    return;
                }
            }
        }
    }
    times.sort();
    let (Some(p50), Some(max)) = (times.get(times.len() / 2), times.last()) else {
        return;
    };
    let detail = format!(
        "{} PINGs{}: p50 {}, max {} (CACHE_REDIS_TIMEOUT {})",
        times.len(),
        if refused {
            " (refused by the ACL, timed all the same)"
        } else {
            ""
        },
        output::latency(*p50),
        output::latency(*max),
        output::duration(deadline)
    );
    if *p50 >= deadline {
        checks.fail("latency", format!("{detail}: most calls would time out"));
    } else if *max >= deadline / 2 {
        checks.warn("latency", format!("{detail}: close to the deadline"));
    } else {
        checks.ok("latency", detail);
    }
}

pub fn tls(admin: &Admin, checks: &mut Checks) {
    match admin.tls() {
        Some(tls) => checks.ok(
            "tls",
            format!(
                "on; the server's certificate is verified against {}{}",
                tls.ca_file().map_or_else(
                    || "the system's roots".to_owned(),
                    |file| format!("REDIS_CA_CERT ({})", file.display())
                ),
                if tls.client_certificate() {
                    "; a client certificate is presented"
                } else {
                    ""
                }
            ),
        ),
        None if admin.is_local() => checks.ok("tls", "off (plain TCP on this machine only)"),
        None => checks.warn(
            "tls",
            "off: traffic to Redis, the password included, is not encrypted; use rediss:// (docs/security.md)",
        ),
    }
}

pub fn auth(admin: &Admin, checks: &mut Checks) {
    let configured = admin.username().unwrap_or("default");
    match admin.query(redis::cmd("ACL").arg("WHOAMI")).wait() {
        Ok(reply) => {
            let user =
                redis::from_redis_value::<String>(reply).unwrap_or_else(|_| configured.to_owned());
            if user == "default" && !admin.is_local() {
                checks.warn(
                    "auth",
                    "authenticated as 'default': give the cache a user of its own with only its commands (docs/security.md)",
                );
            } else {
                checks.ok("auth", format!("authenticated as '{user}' (ACL WHOAMI)"));
            }
        }
        Err(err) if err.is_denied() => checks.ok(
            "auth",
            format!("authenticated as '{configured}' (as configured; ACL WHOAMI is not permitted)"),
        ),
        Err(err) => checks.warn("auth", format!("cannot tell which user: {err}")),
    }
}

/// Every command the runtime sends, tried for real.
pub fn acl(admin: &Admin, checks: &mut Checks) {
    let report = admin.check_permissions().wait();
    let mut allowed: Vec<&str> = Vec::new();
    let mut refused = Vec::new();
    for check in report.checks {
        let on = check
            .node
            .as_ref()
            .map(|node| format!(" on {node}"))
            .unwrap_or_default();
        match check.verdict {
            Verdict::Allowed if !allowed.contains(&check.command) => {
                allowed.push(check.command);
            }
            Verdict::Allowed => {}
            Verdict::Denied(reason) => {
                refused.push(format!("{} denied{on}: NOPERM {reason}", check.command));
            }
            Verdict::Failed(err) => {
                refused.push(format!("{} failed{on}: {err}", check.command));
            }
            _ => {}
        }
    }
    if !allowed.is_empty() {
        checks.ok(
            "acl",
            format!(
                "{} permitted (tried on {}, {})",
                allowed.join(" "),
                report.key,
                if report.cleaned_up {
                    "removed"
                } else {
                    "left to expire within a minute"
                }
            ),
        );
    }
    for line in refused {
        checks.fail("acl", line);
    }
}

/// A reply as text (`INFO`, `CLUSTER INFO`), whatever the protocol.
pub fn text(reply: Value) -> Option<String> {
    redis::from_redis_value::<String>(reply).ok()
}
