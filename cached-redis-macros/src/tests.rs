//! The expansion run as a plain function over `proc_macro2` tokens: what
//! the compile-fail UI tests show through rustc, checked here at the token
//! level, where a coverage tool can see the macro's code run (inside the
//! compiler it writes no profile).

use proc_macro2::TokenStream;
use quote::quote;

use crate::expand::redis_cached;

fn expand(args: TokenStream, item: TokenStream) -> String {
    redis_cached(args, item).to_string()
}

/// The `compile_error!` messages of an expansion.
fn errors(args: TokenStream, item: TokenStream) -> Vec<String> {
    let out = expand(args, item);
    out.split("compile_error ! {")
        .skip(1)
        .filter_map(|rest| rest.split('"').nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn a_free_function_gets_its_body_rewritten_and_its_companions() {
    let out = expand(
        quote!(domain = "natal", ttl = 3600),
        quote!(
            pub async fn natal_chart(req: &Req) -> Result<Chart, E> {
                compute(req)
            }
        ),
    );
    assert!(out.contains("pub async fn natal_chart (req : & Req) -> Result < Chart , E >"));
    assert!(out.contains(":: cached_redis :: __private :: call_async"));
    assert!(out.contains("pub struct natal_chart { }"));
    for companion in [
        "fn key",
        "fn invalidate",
        "async fn refresh",
        "async fn warm",
    ] {
        assert!(out.contains(companion), "{companion} missing");
    }
    assert!(out.contains("natal_chart :: __cached_redis_site ()"));
}

#[test]
fn a_method_gets_companions_only_when_asked() {
    let method = quote!(
        fn natal(&self, day: u32) -> u32 {
            day
        }
    );
    let off = expand(quote!(domain = "natal"), method.clone());
    assert!(!off.contains("natal_key"));
    assert!(off.contains("static __CACHED_REDIS_SITE"));
    let on = expand(quote!(domain = "natal", companions = true), method);
    for companion in [
        "fn natal_key",
        "fn natal_invalidate",
        "fn natal_refresh",
        "fn natal_warm",
    ] {
        assert!(on.contains(companion), "{companion} missing");
    }
    assert!(on.contains("Self :: __cached_redis_site_natal ()"));
    // Threads need the receiver shared: bound where `warm` is used.
    assert!(on.contains("& '__cached_redis_x Self : :: core :: marker :: Sync"));
}

#[test]
fn warm_is_left_out_where_items_cannot_name_the_arguments() {
    let out = expand(
        quote!(domain = "d"),
        quote!(
            fn f(x: impl Serialize) -> u32 {
                1
            }
        ),
    );
    assert!(out.contains("fn key"));
    assert!(!out.contains("fn warm"));
    let out = expand(
        quote!(domain = "d", companions = true),
        quote!(
            fn f(&mut self, x: u32) -> u32 {
                x
            }
        ),
    );
    assert!(out.contains("fn f_refresh"));
    assert!(!out.contains("fn f_warm"));
}

#[test]
fn elided_lifetimes_are_named_in_warm_items() {
    let out = expand(
        quote!(domain = "d"),
        quote!(
            async fn f(a: &str, b: Cow<'_, str>) -> u32 {
                1
            }
        ),
    );
    assert!(
        out.contains(
            "Item = (& '__cached_redis_items str , Cow < '__cached_redis_items , str > ,)"
        )
    );
}

#[test]
fn an_unsafe_fn_has_no_companions_and_cannot_ask_for_them() {
    let item = quote!(
        unsafe fn raw(day: u32) -> u32 {
            day
        }
    );
    assert!(!expand(quote!(domain = "d"), item.clone()).contains("fn key"));
    assert_eq!(
        errors(quote!(domain = "d", companions = true), item),
        ["companions call the function, and cannot call an `unsafe fn`; leave `companions` out"]
    );
}

#[test]
fn every_option_is_accepted_together() {
    let out = expand(
        quote!(
            domain = "natal",
            ttl = "1h",
            version = "v2",
            skip(db),
            segments(size),
            hash_len = 12,
            cache_none = true,
            lock = true,
            stale_if_error = "1h",
            timeout = "2s",
            near = "30s",
            early_refresh = 2.0,
            unless = partial,
            ttl_from = lifetime,
            jitter = "10%",
            companions = false,
            runtime = rt(),
            crate = ::cached_redis
        ),
        quote!(
            async fn chart(size: u32, db: Db) -> Option<u32> {
                None
            }
        ),
    );
    assert!(!out.contains("compile_error"), "{out}");
    for literal in [
        "__CACHED_REDIS_TTL",
        "__CACHED_REDIS_NEAR",
        "__CACHED_REDIS_EARLY_REFRESH",
        "__CACHED_REDIS_JITTER",
    ] {
        assert!(out.contains(literal), "{literal} missing");
    }
    assert!(out.contains(". unless (partial) . ttl_from (lifetime)"));
}

#[test]
fn every_mistake_is_reported_at_once() {
    let found = errors(
        quote!(
            domain = "natal",
            ttl = 1.5,
            lock = "yes",
            lock = true,
            expire = 3,
            skip(nope)
        ),
        quote!(
            fn f(day: u32) -> u32 {
                day
            }
        ),
    );
    assert_eq!(found.len(), 5, "{found:?}");
    assert!(found[0].starts_with("expected a whole number of seconds"));
    assert_eq!(found[1], "expected `true` or `false`");
    assert_eq!(found[2], "duplicate option `lock`");
    assert!(found[3].starts_with("unknown option `expire`; expected one of: domain, ttl"));
    assert!(found[3].contains("companions"));
    assert_eq!(
        found[4],
        "`nope` is not an argument of this function; its arguments are: `day`"
    );
}

#[test]
fn an_attribute_error_still_emits_the_function_and_its_literal_checks() {
    let out = expand(
        quote!(ttl = "5x"),
        quote!(
            fn f(day: u32) -> u32 {
                day
            }
        ),
    );
    assert!(out.contains("fn f (day : u32) -> u32 { day }"));
    assert!(out.contains("missing `domain"));
    assert!(out.contains("const __CACHED_REDIS_TTL"));
}

#[test]
fn what_cannot_be_cached_is_named() {
    let cases = [
        (
            quote!(
                const fn f() -> u32 {
                    1
                }
            ),
            "cannot cache a `const fn`",
        ),
        (
            quote!(
                fn f() -> impl Display {
                    1
                }
            ),
            "must return a concrete type",
        ),
        (
            quote!(
                fn f((a, 1): (u32, u32)) -> u32 {
                    a
                }
            ),
            "argument pattern is not supported",
        ),
        (
            quote!(
                struct S;
            ),
            "can only be applied to a function",
        ),
    ];
    for (item, message) in cases {
        let found = errors(quote!(domain = "d"), item);
        assert!(
            found.iter().any(|e| e.contains(message)),
            "{message}: {found:?}"
        );
    }
}

#[test]
fn option_forms_are_checked_one_by_one() {
    let f = quote!(
        fn f(a: u32, b: u32) -> u32 {
            a
        }
    );
    let cases = [
        (quote!(domain = "d", key), "expected `key = <expression>`"),
        (
            quote!(domain = "d", skip = a),
            "expected `skip(argument, ...)`",
        ),
        (
            quote!(domain = "d", skip(a, a)),
            "`a` is listed twice in `skip`",
        ),
        (
            quote!(domain = "d", segments(a), skip(a)),
            "`a` is skipped, so it cannot be a key segment",
        ),
        (
            quote!(domain = "d", key = a, skip(b)),
            "`skip` has no effect with `key`",
        ),
        (quote!(domain = 3), "expected a string literal"),
        (quote!(domain = "d", crate = 3), "expected a path"),
        (
            quote!(domain = "d", near = 1.5),
            "expected `true`, `false`, or a duration string",
        ),
        (
            quote!(domain = "d", early_refresh = "x"),
            "expected `true`, `false`, or a positive number",
        ),
        (
            quote!(domain = "d", hash_len = "x"),
            "expected a number of hex characters",
        ),
    ];
    for (args, message) in cases {
        let found = errors(args, f.clone());
        assert!(
            found.iter().any(|e| e.contains(message)),
            "{message}: {found:?}"
        );
    }
}
