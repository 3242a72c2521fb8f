//! `doctor`: a checklist of what the cache needs from its Redis, each
//! line green, yellow or red; any red line makes the exit code 1.

mod access;
mod server;

use std::time::Instant;

use cached_redis_core::admin::{Deployment, Node};
use serde::Serialize;

use crate::context::Context;
use crate::error::CliError;
use crate::output::{self, Report, Status, Style};

/// One line of the checklist.
#[derive(Debug, Serialize)]
pub struct Check {
    pub status: Status,
    pub check: &'static str,
    pub detail: String,
}

/// The checklist being written.
#[derive(Debug, Default)]
pub struct Checks(Vec<Check>);

impl Checks {
    pub fn push(&mut self, status: Status, check: &'static str, detail: impl Into<String>) {
        self.0.push(Check {
            status,
            check,
            detail: detail.into(),
        });
    }

    pub fn ok(&mut self, check: &'static str, detail: impl Into<String>) {
        self.push(Status::Ok, check, detail);
    }

    pub fn warn(&mut self, check: &'static str, detail: impl Into<String>) {
        self.push(Status::Warn, check, detail);
    }

    pub fn fail(&mut self, check: &'static str, detail: impl Into<String>) {
        self.push(Status::Fail, check, detail);
    }

    fn count(&self, status: Status) -> usize {
        self.0.iter().filter(|check| check.status == status).count()
    }
}

#[derive(Serialize)]
struct Summary<'a> {
    target: &'a str,
    deployment: String,
    namespace: &'a str,
    ok: bool,
    warnings: usize,
    failures: usize,
    checks: &'a [Check],
}

pub fn run(context: &Context, style: Style, json: bool) -> Result<Report, CliError> {
    let started = Instant::now();
    let admin = context.connect()?;
    let mut checks = Checks::default();
    checks.ok(
        "connection",
        format!(
            "{} ({}) in {}",
            admin.target(),
            admin.deployment(),
            output::latency(started.elapsed())
        ),
    );
    let nodes = match admin.primaries().wait() {
        Ok(nodes) => nodes,
        Err(err) => {
            checks.fail("cluster", format!("cannot read the primaries: {err}"));
            Vec::new()
        }
    };
    access::latency(&admin, &nodes, context.runtime.redis_timeout(), &mut checks);
    access::tls(&admin, &mut checks);
    access::auth(&admin, &mut checks);
    access::acl(&admin, &mut checks);
    if admin.deployment() == Deployment::Sentinel {
        checks.ok(
            "sentinel",
            "master found through Sentinel and confirmed with ROLE",
        );
    }
    for node in &nodes {
        server::node(&admin, node, &label(&admin, node), &mut checks);
    }
    if admin.deployment() == Deployment::Cluster {
        server::cluster(&admin, &nodes, &mut checks);
    }
    let (warnings, failures) = (checks.count(Status::Warn), checks.count(Status::Fail));
    let finding = (failures > 0).then(|| {
        format!(
            "doctor: {failures} check{} failed",
            if failures == 1 { "" } else { "s" }
        )
    });
    let text = if json {
        output::json(&Summary {
            target: admin.target(),
            deployment: admin.deployment().to_string(),
            namespace: admin.namespace(),
            ok: failures == 0,
            warnings,
            failures,
            checks: &checks.0,
        })?
    } else {
        // The longest name any check has, so every run lines up alike.
        let width = checks
            .0
            .iter()
            .map(|c| c.check.len())
            .fold("persistence".len(), usize::max);
        let mut text: String = checks
            .0
            .iter()
            .map(|check| {
                format!(
                    "{} {:<width$}  {}\n",
                    style.marker(check.status),
                    check.check,
                    check.detail
                )
            })
            .collect();
        text.push_str(&format!(
            "\n{} ok, {warnings} warning{}, {failures} failure{}\n",
            checks.count(Status::Ok),
            if warnings == 1 { "" } else { "s" },
            if failures == 1 { "" } else { "s" },
        ));
        text
    };
    Ok(Report { text, finding })
}

/// What a node's lines are prefixed with: nothing on a single node, its
/// address in a cluster.
fn label(admin: &cached_redis_core::admin::Admin, node: &Node) -> String {
    match admin.deployment() {
        Deployment::Cluster => format!("{node}: "),
        _ => String::new(),
    }
}
