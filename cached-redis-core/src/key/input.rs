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
    /// The call's exact input, see [`CallKey::exact`].
    exact: Vec<u8>,
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

    /// The call's key under `namespace` (checked when the configuration
    /// was built) for a value of the fingerprinted type.
    pub(crate) fn finish<'a>(
        mut self,
        namespace: &'a str,
        schema: &[u8; 32],
    ) -> Result<CallKey<'a>, KeyError> {
        if let Some(err) = self.failed.take() {
            return Err(err);
        }
        let shape = self.shape;
        let scratch = self.scratch();
        scratch.parts.frame();
        // The exact input, after the domain's prefix (so `clear` finds it).
        // The site is told by its address: memory lives in this process.
        let exact = &mut scratch.exact;
        exact.clear();
        for label in [namespace, shape.version, shape.domain] {
            exact.extend_from_slice(label.as_bytes());
            exact.push(b':');
        }
        exact.extend_from_slice(&(std::ptr::from_ref(shape) as usize).to_le_bytes());
        exact.extend_from_slice(schema);
        exact.extend_from_slice(&(scratch.generics.len() as u64).to_le_bytes());
        for type_name in &scratch.generics {
            frame(exact, type_name.as_bytes());
        }
        frame(exact, scratch.segments.as_bytes());
        exact.extend_from_slice(&(scratch.segment_ends.len() as u64).to_le_bytes());
        for end in &scratch.segment_ends {
            exact.extend_from_slice(&(*end as u64).to_le_bytes());
        }
        exact.extend_from_slice(scratch.parts.framed());
        Ok(CallKey {
            input: self,
            namespace,
            schema: *schema,
            hashed: OnceLock::new(),
        })
    }
}

fn frame(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// One call's key. Memory finds entries by the call's exact input, so a
/// memory hit hashes nothing; Redis, flights and envelopes need the
/// [`CacheKey`] and its digest, made on first use.
pub(crate) struct CallKey<'a> {
    input: KeyInput,
    namespace: &'a str,
    schema: [u8; 32],
    hashed: OnceLock<CacheKey>,
}

impl CallKey<'_> {
    /// This key, owned and hashed: for work that outlives its call (a
    /// refresh or a computation finishing in the background).
    pub(crate) fn detach(&self) -> CallKey<'static> {
        let scratch = Scratch {
            exact: self.exact().to_vec(),
            ..Scratch::default()
        };
        CallKey {
            input: KeyInput {
                shape: self.input.shape,
                scratch: Some(Box::new(scratch)),
                failed: None,
            },
            // Never read: the key is hashed already.
            namespace: "",
            schema: self.schema,
            hashed: OnceLock::from(self.key().clone()),
        }
    }

    /// The call's exact input, prefixed with its domain's key prefix: what
    /// the memory cache is keyed by. Equal bytes, equal inputs — no
    /// truncated hash can collide here.
    pub(crate) fn exact(&self) -> &[u8] {
        self.input.scratch.as_ref().map_or(&[][..], |s| &s.exact)
    }

    /// The Redis key and digest, hashed on first use.
    pub(crate) fn key(&self) -> &CacheKey {
        self.hashed.get_or_init(|| self.compute())
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.key().as_bytes()
    }

    pub(crate) fn digest(&self) -> &[u8; 32] {
        self.key().digest()
    }

    pub(crate) fn hash(&self) -> &str {
        self.key().hash()
    }

    fn compute(&self) -> CacheKey {
        let (shape, namespace, schema) = (self.input.shape, self.namespace, &self.schema);
        let empty = Scratch::default();
        let scratch = self.input.scratch.as_deref().unwrap_or(&empty);
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
            return tail(state, labels, segments, &scratch.parts, shape.hash_len);
        }
        let input = Input {
            namespace,
            version: shape.version,
            domain: shape.domain,
            function: (shape.function)(),
            generics: scratch.generics.iter().copied(),
            schema: Some(schema),
            segments,
            parts: &scratch.parts,
        };
        if !scratch.generics.is_empty() {
            return input.key(shape.hash_len);
        }
        let state = input.head();
        let _ = shape.head.set(Head {
            namespace: namespace.into(),
            schema: *schema,
            state: state.clone(),
        });
        tail(state, labels, input.segments, input.parts, shape.hash_len)
    }
}

impl Drop for KeyInput {
    fn drop(&mut self) {
        let Some(mut scratch) = self.scratch.take() else {
            return;
        };
        if scratch.parts.capacity() + scratch.exact.capacity() + scratch.segments.capacity()
            > KEEP_SCRATCH
        {
            return;
        }
        scratch.parts.clear();
        scratch.exact.clear();
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
