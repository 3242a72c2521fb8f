//! Whether the configured user may send every command the runtime sends,
//! found by sending each one for real on a throw-away key of the
//! namespace: an ACL can deny a command, a subcommand or a key pattern,
//! and only the server knows how its rules combine.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use ::redis::{Cmd, Script, Value};

use super::{Admin, AdminError, Deployment, Node};
use crate::redis::DELETE_IF_UNCHANGED;
use crate::runtime::Operation;

/// How long the throw-away key lives if it cannot be removed (`UNLINK`
/// denied): it goes by itself.
const PROBE_TTL: Duration = Duration::from_secs(60);

/// Every command tried and what the server said, from
/// [`Admin::check_permissions`].
#[derive(Debug)]
#[non_exhaustive]
pub struct PermissionReport {
    /// The throw-away key the key commands were tried on,
    /// `{namespace}:doctor:{random}`.
    pub key: String,
    /// One check per command (per primary for the keyless ones in a cluster).
    pub checks: Vec<PermissionCheck>,
    /// Whether the key is gone again (else it expires within a minute).
    pub cleaned_up: bool,
}

/// One command tried.
#[derive(Debug)]
#[non_exhaustive]
pub struct PermissionCheck {
    /// The command as an ACL names it, e.g. `SET`, `CLIENT TRACKING`.
    pub command: &'static str,
    /// The node it was sent to; `None`: routed by the throw-away key.
    pub node: Option<Node>,
    /// What the server said.
    pub verdict: Verdict,
}

/// What the server said to one command.
#[derive(Debug)]
#[non_exhaustive]
pub enum Verdict {
    /// The command ran (or failed for a reason other than permission,
    /// such as `NOSCRIPT`, which proves it was let through).
    Allowed,
    /// `NOPERM`: the user may not run it, or not on this key. The
    /// server's message.
    Denied(String),
    /// Another failure: the check cannot tell (a timeout, `OOM`, a
    /// script's inner command refused).
    Failed(AdminError),
}

impl Admin {
    /// Tries every command the runtime would send with this
    /// configuration, as the configured user: `SET` (with `PX`), `GET`,
    /// `TYPE`, `EVAL` and `EVALSHA` (the purge script, which changes
    /// nothing here), `SCAN`, `UNLINK`; `CLIENT TRACKING` with a
    /// near-cache (`CACHE_NEAR`, single node); `CLUSTER SLOTS` and `PING`
    /// on every primary of a cluster; `ROLE` behind Sentinel. The key
    /// commands use a fresh key under the namespace, removed at the end
    /// (and set to expire in a minute in case it cannot be).
    pub fn check_permissions(&self) -> Operation<'_, PermissionReport> {
        Operation::new(async move {
            let key = format!(
                "{}:doctor:{:016x}",
                self.namespace,
                RandomState::new().hash_one(Instant::now())
            );
            let mut checks = Vec::new();
            let mut check = |command, node: Option<Node>, result| {
                checks.push(PermissionCheck {
                    command,
                    node,
                    verdict: verdict(result),
                });
            };
            let script = Script::new(DELETE_IF_UNCHANGED);
            // Deletes nothing: the key never holds this value.
            let absent = "cached-redis doctor: not the value";
            let keyed: [(&'static str, Cmd); 5] = [
                ("SET", {
                    let mut cmd = Cmd::new();
                    cmd.arg("SET")
                        .arg(&key)
                        .arg("cached-redis doctor")
                        .arg("PX")
                        .arg(PROBE_TTL.as_millis() as u64);
                    cmd
                }),
                ("GET", one("GET", &key)),
                ("TYPE", one("TYPE", &key)),
                ("EVAL", {
                    let mut cmd = Cmd::new();
                    cmd.arg("EVAL")
                        .arg(DELETE_IF_UNCHANGED)
                        .arg(1)
                        .arg(&key)
                        .arg(absent);
                    cmd
                }),
                ("EVALSHA", {
                    let mut cmd = Cmd::new();
                    cmd.arg("EVALSHA")
                        .arg(script.get_hash())
                        .arg(1)
                        .arg(&key)
                        .arg(absent);
                    cmd
                }),
            ];
            for (command, cmd) in &keyed {
                check(command, None, self.run(cmd, None).await);
            }
            let nodes = self.primaries_now().await;
            let nodes = match nodes {
                Ok(nodes) => nodes,
                Err(err) => {
                    check("CLUSTER SLOTS", None, Err(err));
                    Vec::new()
                }
            };
            for node in &nodes {
                let mut scan = Cmd::new();
                scan.arg("SCAN")
                    .arg(0)
                    .arg("MATCH")
                    .arg(&key)
                    .arg("COUNT")
                    .arg(10);
                check(
                    "SCAN",
                    Some(node.clone()),
                    self.run(&scan, Some(node)).await,
                );
            }
            let unlinked = self.run(&one("UNLINK", &key), None).await;
            let cleaned_up = unlinked.is_ok();
            check("UNLINK", None, unlinked);
            if self.near {
                let mut on = Cmd::new();
                on.arg("CLIENT").arg("TRACKING").arg("ON");
                let tracking = self.run(&on, None).await;
                if tracking.is_ok() {
                    // This connection serves other commands: leave it as it was.
                    let mut off = Cmd::new();
                    off.arg("CLIENT").arg("TRACKING").arg("OFF");
                    let _ = self.run(&off, None).await;
                }
                check("CLIENT TRACKING", None, tracking);
            }
            match self.deployment {
                Deployment::Cluster => {
                    for node in &nodes {
                        let mut slots = Cmd::new();
                        slots.arg("CLUSTER").arg("SLOTS");
                        let slots = self.run(&slots, Some(node)).await;
                        check("CLUSTER SLOTS", Some(node.clone()), slots);
                        let ping = self.run(&Cmd::new().arg("PING").clone(), Some(node)).await;
                        check("PING", Some(node.clone()), ping);
                    }
                }
                Deployment::Sentinel => {
                    let role = self.run(Cmd::new().arg("ROLE"), None).await;
                    check("ROLE", None, role);
                }
                Deployment::Single => {}
            }
            PermissionReport {
                key,
                checks,
                cleaned_up,
            }
        })
    }
}

fn one(command: &str, key: &str) -> Cmd {
    let mut cmd = Cmd::new();
    cmd.arg(command).arg(key);
    cmd
}

fn verdict(result: Result<Value, AdminError>) -> Verdict {
    match result {
        Ok(_) => Verdict::Allowed,
        Err(AdminError::Command { source, .. }) if source.code() == Some("NOPERM") => {
            Verdict::Denied(source.detail().unwrap_or("permission denied").to_owned())
        }
        // The ACL check comes before the script cache is looked in.
        Err(err) if err.code() == Some("NOSCRIPT") => Verdict::Allowed,
        Err(err) => Verdict::Failed(err),
    }
}
