//! A call's key input, as generated code collects it: checked at compile
//! time, written into reused per-thread buffers, hashed once.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::sync::OnceLock;

use serde::Serialize;
use sha2::Sha256;

use super::hash::{Input, Parts, tail};
use super::{CacheKey, KeyError};

// ------------------------------------------------- from generated code

/// What the attribute knows about a key at compile time; its labels were
/// checked then, so calls never check them again.
pub(crate) struct KeyShape {
    pub(crate) domain: &'static str,
    pub(crate) version: &'static str,
    pub(crate) hash_len: usize,
    pub(crate) function: fn() -> &'static str,
    /// The hash state after the fields every call shares, for a function
    /// with no type parameters: a call hashes only its own arguments.
    pub(crate) head: OnceLock<Head>,
}

/// A hashed head, and the namespace and schema it was hashed with.
pub(crate) struct Head {
    namespace: Box<str>,
    schema: [u8; 32],
    state: Sha256,
}

/// Reusable buffers of one thread: a call's key input is written here and
/// hashed, so building a key allocates nothing once a thread has warmed up.
#[derive(Default)]
struct Scratch {
    parts: Parts,
    generics: Vec<&'static str>,
    segments: String,
    segment_ends: Vec<usize>,
}

thread_local! {
    static SCRATCH: Cell<Option<Box<Scratch>>> = const { Cell::new(None) };
}

/// Buffers larger than this are not kept for the next call.
const KEEP_SCRATCH: usize = 64 * 1024;

/// The key arguments of one call, collected by generated code and hashed
/// once they are all in.
pub struct KeyInput {
    shape: &'static KeyShape,
    /// Given back to the thread when dropped.
    scratch: Option<Box<Scratch>>,
    failed: Option<KeyError>,
}

impl KeyInput {
    pub(crate) fn new(shape: &'static KeyShape) -> KeyInput {
        let scratch = SCRATCH.try_with(Cell::take).ok().flatten();
        KeyInput {
            shape,
            scratch: Some(scratch.unwrap_or_default()),
            failed: None,
        }
    }

    fn scratch(&mut self) -> &mut Scratch {
        self.scratch.get_or_insert_with(Box::default)
    }

    pub(crate) fn push_part<T: Serialize + ?Sized>(&mut self, name: &str, part: &T) {
        if self.failed.is_none()
            && let Err(err) = self.scratch().parts.push(name, part)
        {
            self.failed = Some(err);
        }
    }

    pub(crate) fn push_type(&mut self, type_name: &'static str) {
        self.scratch().generics.push(type_name);
    }

    pub(crate) fn push_segment(&mut self, value: &dyn fmt::Display) {
        let scratch = self.scratch();
        // Writing to a String cannot fail.
        let _ = write!(scratch.segments, "{value}");
        scratch.segment_ends.push(scratch.segments.len());
    }

    /// The key under `namespace` (checked when the configuration was built)
    /// for a value of the fingerprinted type.
    pub(crate) fn finish(
        mut self,
        namespace: &str,
        schema: &[u8; 32],
    ) -> Result<CacheKey, KeyError> {
        if let Some(err) = self.failed.take() {
            return Err(err);
        }
        let shape = self.shape;
        let scratch = self.scratch();
        let segments = SegmentIter {
            text: &scratch.segments,
            ends: &scratch.segment_ends,
            next: 0,
        };
        let labels = [namespace, shape.version, shape.domain];
        // The common case: no type parameters, the head already hashed.
        if scratch.generics.is_empty()
            && let Some(head) = shape.head.get()
            && *head.namespace == *namespace
            && head.schema == *schema
        {
            let state = head.state.clone();
            return Ok(tail(
                state,
                labels,
                segments,
                &mut scratch.parts,
                shape.hash_len,
            ));
        }
        let input = Input {
            namespace,
            version: shape.version,
            domain: shape.domain,
            function: (shape.function)(),
            generics: scratch.generics.iter().copied(),
            schema: Some(schema),
            segments,
            parts: &mut scratch.parts,
        };
        if !scratch.generics.is_empty() {
            return Ok(input.key(shape.hash_len));
        }
        let state = input.head();
        let _ = shape.head.set(Head {
            namespace: namespace.into(),
            schema: *schema,
            state: state.clone(),
        });
        Ok(tail(
            state,
            labels,
            input.segments,
            input.parts,
            shape.hash_len,
        ))
    }
}

impl Drop for KeyInput {
    fn drop(&mut self) {
        let Some(mut scratch) = self.scratch.take() else {
            return;
        };
        if scratch.parts.capacity() + scratch.segments.capacity() > KEEP_SCRATCH {
            return;
        }
        scratch.parts.clear();
        scratch.generics.clear();
        scratch.segments.clear();
        scratch.segment_ends.clear();
        let _ = SCRATCH.try_with(|cell| cell.set(Some(scratch)));
    }
}

/// The segments of a [`Scratch`], each a slice of its text.
#[derive(Clone)]
struct SegmentIter<'a> {
    text: &'a str,
    ends: &'a [usize],
    next: usize,
}

impl<'a> Iterator for SegmentIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let end = *self.ends.get(self.next)?;
        let start = match self.next {
            0 => 0,
            n => self.ends[n - 1],
        };
        self.next += 1;
        self.text.get(start..end)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.ends.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for SegmentIter<'_> {}
