//! A walk of the key space, one `SCAN` page at a time, over every primary.

use ::redis::{Cmd, Value};

use super::{Admin, AdminError, Node};
use crate::runtime::Operation;

/// A walk of every key matching a pattern, from [`Admin::scan`].
///
/// Iterate it from sync code (each step blocks for one round trip), or
/// call [`next_batch`](Scan::next_batch) and `.await` it. After an error
/// the walk ends.
pub struct Scan<'a> {
    admin: &'a Admin,
    pattern: String,
    count: usize,
    /// The primaries to walk, read on the first step.
    nodes: Option<Vec<Node>>,
    at: usize,
    cursor: u64,
    done: bool,
}

/// One `SCAN` page: the node it came from, and the keys on it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Batch {
    /// The node whose keys these are.
    pub node: Node,
    /// The keys matching the pattern in this page; may be empty (a page
    /// covers part of the key space, not a number of matches).
    pub keys: Vec<Vec<u8>>,
}

impl<'a> Scan<'a> {
    pub(super) fn new(admin: &'a Admin, pattern: &str, count: usize) -> Scan<'a> {
        Scan {
            admin,
            pattern: pattern.to_owned(),
            count,
            nodes: None,
            at: 0,
            cursor: 0,
            done: false,
        }
    }

    /// The next page, or `None` once every node has been walked.
    pub fn next_batch(&mut self) -> Operation<'_, Result<Option<Batch>, AdminError>> {
        Operation::new(async move {
            if self.done {
                return Ok(None);
            }
            let step = self.step().await;
            if !matches!(step, Ok(Some(_))) {
                self.done = true;
            }
            step
        })
    }

    async fn step(&mut self) -> Result<Option<Batch>, AdminError> {
        if self.nodes.is_none() {
            self.nodes = Some(self.admin.primaries_now().await?);
        }
        let Some(node) = self.nodes.as_ref().and_then(|nodes| nodes.get(self.at)) else {
            return Ok(None);
        };
        let node = node.clone();
        let mut scan = Cmd::new();
        scan.arg("SCAN")
            .arg(self.cursor)
            .arg("MATCH")
            .arg(&self.pattern)
            .arg("COUNT")
            .arg(self.count);
        let reply: Value = self.admin.run(&scan, Some(&node)).await?;
        let (next, keys): (u64, Vec<Vec<u8>>) =
            ::redis::from_redis_value(reply).map_err(|_| AdminError::UnexpectedReply("SCAN"))?;
        if next == 0 {
            self.at += 1;
        }
        self.cursor = next;
        Ok(Some(Batch { node, keys }))
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<Batch, AdminError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().wait().transpose()
    }
}

impl std::fmt::Debug for Scan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("pattern", &self.pattern)
            .field("cursor", &self.cursor)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
