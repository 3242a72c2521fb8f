//! Which results are cached, chosen by the function's return type.
//!
//! `Result<T, E>` caches `Ok` only and `Option<T>` caches `Some` only; any
//! other `T` is cached as is. The choice is made by the type, not by how the
//! return type is spelled, so `io::Result<T>` is a `Result` and a user type
//! named `Result` is not. It uses method resolution through references
//! ("autoref specialization"): generated code calls
//! `(&&&Probe::<R>::new()).__cached_redis_policy()`, and the impl for the
//! most specific matching shape wins.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// How a function's output maps to the value stored.
pub trait Policy: Copy {
    /// The function's return type.
    type Output;
    /// The type stored in the cache.
    type Stored: Serialize + DeserializeOwned;
    /// The part of `output` worth storing, if any.
    fn storable<'a>(&self, output: &'a Self::Output) -> Option<&'a Self::Stored>;
    /// Rebuilds the output from a stored value.
    fn restore(&self, stored: Self::Stored) -> Self::Output;
    /// Whether `output` is a failure a stale value may stand in for
    /// (`stale_if_error`): an `Err`. A `None` is an answer, not a failure.
    fn failed(&self, output: &Self::Output) -> bool;
    /// How this process keeps decoded copies of stored values, if it can
    /// (see [`Copies`]).
    fn copier(&self) -> Option<Copier<Self::Stored>> {
        None
    }
    /// The TTL `stored` should live for, if the function chooses it from
    /// the value (`ttl_from`).
    fn ttl_for(&self, _stored: &Self::Stored) -> Option<Duration> {
        None
    }
}

/// A policy with the attribute's conditions on what is stored: `unless`
/// (a value for which it returns `true` is returned, not stored) and
/// `ttl_from` (the TTL chosen from the value).
pub struct Conditions<P: Policy> {
    policy: P,
    unless: Option<fn(&P::Stored) -> bool>,
    ttl_from: Option<fn(&P::Stored) -> Duration>,
}

impl<P: Policy> Clone for Conditions<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: Policy> Copy for Conditions<P> {}

impl<P: Policy> Conditions<P> {
    /// `policy`, with no condition yet.
    pub fn new(policy: P) -> Self {
        Conditions {
            policy,
            unless: None,
            ttl_from: None,
        }
    }

    /// `unless = path`
    pub fn unless(mut self, unless: fn(&P::Stored) -> bool) -> Self {
        self.unless = Some(unless);
        self
    }

    /// `ttl_from = path`
    pub fn ttl_from(mut self, ttl_from: fn(&P::Stored) -> Duration) -> Self {
        self.ttl_from = Some(ttl_from);
        self
    }
}

impl<P: Policy> Policy for Conditions<P> {
    type Output = P::Output;
    type Stored = P::Stored;
    fn storable<'a>(&self, output: &'a Self::Output) -> Option<&'a Self::Stored> {
        let stored = self.policy.storable(output)?;
        match self.unless {
            Some(unless) if unless(stored) => None,
            _ => Some(stored),
        }
    }
    fn restore(&self, stored: Self::Stored) -> Self::Output {
        self.policy.restore(stored)
    }
    fn failed(&self, output: &Self::Output) -> bool {
        self.policy.failed(output)
    }
    fn copier(&self) -> Option<Copier<Self::Stored>> {
        self.policy.copier()
    }
    fn ttl_for(&self, stored: &Self::Stored) -> Option<Duration> {
        self.ttl_from.map(|ttl_from| ttl_from(stored))
    }
}

/// A decoded value, kept beside its sealed bytes in this process's memory.
pub(crate) type Decoded = Arc<dyn Any + Send + Sync>;

/// Keeps and takes back decoded copies of a `Clone` value, so a hit in this
/// process's memory clones the value instead of decoding its bytes (about
/// half the cost for a typical struct). Made only for `'static` types:
/// the copy is found again by its type.
pub struct Copier<T> {
    pub(crate) keep: fn(&T) -> Decoded,
    pub(crate) take: fn(&Decoded) -> Option<T>,
}

impl<T> Clone for Copier<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Copier<T> {}

impl<T: Clone + Send + Sync + 'static> Copier<T> {
    const FOR_CLONE: Copier<T> = Copier {
        keep: |value| Arc::new(value.clone()),
        take: |decoded| decoded.downcast_ref::<T>().cloned(),
    };
}

/// A policy whose stored values are `Clone`: served from memory as clones
/// of a decoded copy.
#[derive(Clone, Copy)]
pub struct Cloned<P>(P);

impl<P: Policy> Policy for Cloned<P>
where
    P::Stored: Clone + Send + Sync + 'static,
{
    type Output = P::Output;
    type Stored = P::Stored;
    fn storable<'a>(&self, output: &'a Self::Output) -> Option<&'a Self::Stored> {
        self.0.storable(output)
    }
    fn restore(&self, stored: Self::Stored) -> Self::Output {
        self.0.restore(stored)
    }
    fn failed(&self, output: &Self::Output) -> bool {
        self.0.failed(output)
    }
    fn copier(&self) -> Option<Copier<Self::Stored>> {
        Some(Copier::FOR_CLONE)
    }
}

/// Names a selected policy for the choice of how memory serves its values:
/// generated code calls `(&&Copies(policy)).__cached_redis_copies()`, which
/// wraps it in [`Cloned`] when the stored type is `Clone + Send + Sync +
/// 'static`, and leaves it as it is otherwise (values are then decoded on
/// every hit). Inside a generic function the choice follows the bounds the
/// function declares.
pub struct Copies<P>(pub P);

/// Selected when the stored type can be cloned.
pub trait ViaClone {
    /// The selected policy.
    type Policy;
    /// Returns the policy.
    fn __cached_redis_copies(self) -> Self::Policy;
}

/// Selected for every other stored type.
pub trait ViaDecode {
    /// The selected policy.
    type Policy;
    /// Returns the policy.
    fn __cached_redis_copies(self) -> Self::Policy;
}

impl<P: Policy + Copy> ViaClone for &&Copies<P>
where
    P::Stored: Clone + Send + Sync + 'static,
{
    type Policy = Cloned<P>;
    fn __cached_redis_copies(self) -> Cloned<P> {
        Cloned(self.0)
    }
}

impl<P: Policy + Copy> ViaDecode for &Copies<P> {
    type Policy = P;
    fn __cached_redis_copies(self) -> P {
        self.0
    }
}

/// The policies are markers: copied, whatever their types.
macro_rules! marker_copy {
    ($($policy:ident<$($param:ident),*>),*) => {$(
        impl<$($param),*> Clone for $policy<$($param),*> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<$($param),*> Copy for $policy<$($param),*> {}
    )*};
}

marker_copy!(Plain<T>, OkOnly<T, E>, SomeOnly<T>);

/// Stores every value.
pub struct Plain<T>(PhantomData<fn() -> T>);
/// Stores `Ok` values; an `Err` is returned and never stored.
pub struct OkOnly<T, E>(PhantomData<fn() -> (T, E)>);
/// Stores `Some` values; `None` is returned and never stored.
pub struct SomeOnly<T>(PhantomData<fn() -> T>);

impl<T> Plain<T> {
    /// Used for `cache_none = true`, where `None` is a value like any other.
    pub fn new() -> Self {
        Plain(PhantomData)
    }
}

impl<T> Default for Plain<T> {
    fn default() -> Self {
        Plain::new()
    }
}

impl<T: Serialize + DeserializeOwned> Policy for Plain<T> {
    type Output = T;
    type Stored = T;
    fn storable<'a>(&self, output: &'a T) -> Option<&'a T> {
        Some(output)
    }
    fn restore(&self, stored: T) -> T {
        stored
    }
    fn failed(&self, _: &T) -> bool {
        false
    }
}

impl<T: Serialize + DeserializeOwned, E> Policy for OkOnly<T, E> {
    type Output = Result<T, E>;
    type Stored = T;
    fn storable<'a>(&self, output: &'a Result<T, E>) -> Option<&'a T> {
        output.as_ref().ok()
    }
    fn restore(&self, stored: T) -> Result<T, E> {
        Ok(stored)
    }
    fn failed(&self, output: &Result<T, E>) -> bool {
        output.is_err()
    }
}

impl<T: Serialize + DeserializeOwned> Policy for SomeOnly<T> {
    type Output = Option<T>;
    type Stored = T;
    fn storable<'a>(&self, output: &'a Option<T>) -> Option<&'a T> {
        output.as_ref()
    }
    fn restore(&self, stored: T) -> Option<T> {
        Some(stored)
    }
    fn failed(&self, _: &Option<T>) -> bool {
        false
    }
}

/// Names a return type for policy selection.
pub struct Probe<R>(PhantomData<fn() -> R>);

impl<R> Probe<R> {
    /// A probe for `R`.
    pub fn new() -> Self {
        Probe(PhantomData)
    }
}

impl<R> Default for Probe<R> {
    fn default() -> Self {
        Probe::new()
    }
}

/// Names a return type for policy selection under `cache_none = true`:
/// `None` is stored like any value, an `Err` still never is.
pub struct ProbeNone<R>(PhantomData<fn() -> R>);

impl<R> ProbeNone<R> {
    /// A probe for `R`.
    pub fn new() -> Self {
        ProbeNone(PhantomData)
    }
}

impl<R> Default for ProbeNone<R> {
    fn default() -> Self {
        ProbeNone::new()
    }
}

/// Selected for `Result<T, E>`.
pub trait ViaResult {
    /// The selected policy.
    type Policy;
    /// Returns the policy.
    fn __cached_redis_policy(&self) -> Self::Policy;
}

/// Selected for `Option<T>`.
pub trait ViaOption {
    /// The selected policy.
    type Policy;
    /// Returns the policy.
    fn __cached_redis_policy(&self) -> Self::Policy;
}

/// Selected for every other type.
pub trait ViaPlain {
    /// The selected policy.
    type Policy;
    /// Returns the policy.
    fn __cached_redis_policy(&self) -> Self::Policy;
}

impl<T: Serialize + DeserializeOwned, E> ViaResult for &&Probe<Result<T, E>> {
    type Policy = OkOnly<T, E>;
    fn __cached_redis_policy(&self) -> OkOnly<T, E> {
        OkOnly(PhantomData)
    }
}

impl<T: Serialize + DeserializeOwned> ViaOption for &Probe<Option<T>> {
    type Policy = SomeOnly<T>;
    fn __cached_redis_policy(&self) -> SomeOnly<T> {
        SomeOnly(PhantomData)
    }
}

impl<T: Serialize + DeserializeOwned, E> ViaResult for &&ProbeNone<Result<T, E>> {
    type Policy = OkOnly<T, E>;
    fn __cached_redis_policy(&self) -> OkOnly<T, E> {
        OkOnly(PhantomData)
    }
}

impl<T: Serialize + DeserializeOwned> ViaPlain for ProbeNone<T> {
    type Policy = Plain<T>;
    fn __cached_redis_policy(&self) -> Plain<T> {
        Plain(PhantomData)
    }
}

impl<T: Serialize + DeserializeOwned> ViaPlain for Probe<T> {
    type Policy = Plain<T>;
    fn __cached_redis_policy(&self) -> Plain<T> {
        Plain(PhantomData)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_name<P>(_: &P) -> &'static str {
        let path = std::any::type_name::<P>()
            .split('<')
            .next()
            .unwrap_or_default();
        path.rsplit("::").next().unwrap_or_default()
    }

    mod shadow {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Result<T>(pub T);
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the borrows are the selection mechanism
    fn selection_follows_the_type_not_its_spelling() {
        let result = (&&&Probe::<std::io::Result<u8>>::new()).__cached_redis_policy();
        assert!(policy_name(&result).starts_with("OkOnly"));
        let option = (&&&Probe::<Option<u8>>::new()).__cached_redis_policy();
        assert!(policy_name(&option).starts_with("SomeOnly"));
        let plain = (&&&Probe::<Vec<u8>>::new()).__cached_redis_policy();
        assert!(policy_name(&plain).starts_with("Plain"));
        let shadowed = (&&&Probe::<shadow::Result<u8>>::new()).__cached_redis_policy();
        assert!(policy_name(&shadowed).starts_with("Plain"));
        // cache_none = true: None is a value, but an Err is still never stored.
        let none_result =
            (&&&ProbeNone::<Result<Option<u8>, String>>::new()).__cached_redis_policy();
        assert!(policy_name(&none_result).starts_with("OkOnly"));
        let none_option = (&&&ProbeNone::<Option<u8>>::new()).__cached_redis_policy();
        assert!(policy_name(&none_option).starts_with("Plain"));
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the borrows are the selection mechanism
    fn clone_values_get_a_copier_and_others_are_decoded() {
        fn copies<P: Policy + Copy>(policy: P) -> bool {
            // Inside a generic function only the declared bounds count: no
            // `Clone` bound here, so always decoded.
            (&&Copies(policy))
                .__cached_redis_copies()
                .copier()
                .is_some()
        }
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Opaque;

        let cloned = (&&Copies(OkOnly::<Vec<String>, ()>(PhantomData))).__cached_redis_copies();
        assert!(cloned.copier().is_some());
        let opaque = (&&Copies(Plain::<Opaque>::new())).__cached_redis_copies();
        assert!(opaque.copier().is_none());
        assert!(!copies(SomeOnly::<u8>(PhantomData)));

        let copier = cloned.copier().expect("a copier");
        let decoded = (copier.keep)(&vec!["a".to_owned()]);
        assert_eq!((copier.take)(&decoded), Some(vec!["a".to_owned()]));
        // A copy of another type is never taken for this one.
        let other: Decoded = Arc::new(7_u8);
        assert_eq!((copier.take)(&other), None);
    }

    #[test]
    fn ok_and_some_only() {
        let ok = OkOnly::<u8, ()>(PhantomData);
        assert_eq!(ok.storable(&Ok(1)), Some(&1));
        assert_eq!(ok.storable(&Err(())), None);
        let some = SomeOnly::<u8>(PhantomData);
        assert_eq!(some.storable(&None), None);
        assert_eq!(some.restore(3), Some(3));
    }
}
