//! Parsing the attribute's options.
//!
//! Options are first parsed into a generic `key = value` / `key(list)` shape,
//! then each is checked for its form on its own, so one run reports every
//! mistake. What a literal may hold (a domain's characters, the `hash_len`
//! range, a `ttl` string) is not decided here: the expansion hands each
//! literal to a `const fn` of the runtime crate, the one place those rules
//! live, and the compiler reports a bad one at the literal.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream, Parser as _};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, LitBool, LitInt, LitStr, Path, Token, parenthesized};

const KNOWN: &str = "domain, ttl, version, skip, segments, key, hash_len, cache_none, lock, \
                     stale_if_error, timeout, near, early_refresh, unless, ttl_from, jitter, \
                     companions, runtime, crate";

/// The options of one `#[redis_cached(...)]`, as far as they parsed.
#[derive(Default)]
pub(crate) struct Args {
    pub domain: Option<LitStr>,
    pub ttl: Option<DurationArg>,
    pub version: Option<LitStr>,
    pub skip: Vec<Ident>,
    pub segments: Vec<Ident>,
    pub key: Option<(Ident, Expr)>,
    pub hash_len: Option<LitInt>,
    pub cache_none: bool,
    pub lock: Option<bool>,
    pub stale_if_error: Option<DurationArg>,
    pub timeout: Option<DurationArg>,
    pub near: Option<NearArg>,
    pub early_refresh: Option<EarlyArg>,
    pub unless: Option<Expr>,
    pub ttl_from: Option<Expr>,
    pub jitter: Option<LitStr>,
    pub companions: Option<LitBool>,
    pub runtime: Option<Expr>,
    pub krate: Option<Path>,
}

/// `near = true | false | "30s"`.
pub(crate) enum NearArg {
    Flag(bool),
    Within(DurationArg),
}

/// `early_refresh = true | false | 2.0`: off, or on with β (default 1).
pub(crate) enum EarlyArg {
    Flag(bool),
    /// β's digits, without a suffix, and where it was written.
    Beta(String, Span),
}

/// A duration option's literal: whole seconds, or text such as `"15m"`.
pub(crate) enum DurationArg {
    Seconds(LitInt),
    Text(LitStr),
}

/// Collects errors so all of them are reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub fn spanned(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub fn finish(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}

struct RawArg {
    name: Ident,
    value: RawValue,
}

enum RawValue {
    Flag,
    Eq(Expr),
    List(Punctuated<Ident, Token![,]>),
}

impl Parse for RawArg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // `parse_any` so `crate = ...` parses like any other key.
        let name = Ident::parse_any(input)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            RawValue::Eq(input.parse()?)
        } else if input.peek(syn::token::Paren) {
            let content;
            parenthesized!(content in input);
            RawValue::List(content.parse_terminated(Ident::parse_any, Token![,])?)
        } else {
            RawValue::Flag
        };
        Ok(RawArg { name, value })
    }
}

impl Args {
    /// Parses what it can; every mistake goes to `errors`.
    pub fn parse(tokens: TokenStream, errors: &mut Errors) -> Args {
        let mut args = Args::default();
        let raw = match Punctuated::<RawArg, Token![,]>::parse_terminated.parse2(tokens) {
            Ok(raw) => raw,
            Err(error) => {
                errors.push(error);
                return args;
            }
        };
        let mut seen: Vec<String> = Vec::new();
        for RawArg { name, value } in raw {
            let key = name.to_string();
            if seen.contains(&key) {
                errors.spanned(&name, format_args!("duplicate option `{key}`"));
                continue;
            }
            seen.push(key.clone());
            let result = match key.as_str() {
                "domain" => string(&name, value).map(|lit| args.domain = Some(lit)),
                "version" => string(&name, value).map(|lit| args.version = Some(lit)),
                "ttl" => duration(&name, value).map(|ttl| args.ttl = Some(ttl)),
                "stale_if_error" => {
                    duration(&name, value).map(|window| args.stale_if_error = Some(window))
                }
                "timeout" => duration(&name, value).map(|limit| args.timeout = Some(limit)),
                "near" => near(&name, value).map(|near| args.near = Some(near)),
                "early_refresh" => {
                    early_refresh(&name, value).map(|early| args.early_refresh = Some(early))
                }
                "skip" => list(&name, value).map(|idents| args.skip = idents),
                "segments" => list(&name, value).map(|idents| args.segments = idents),
                "key" => expr(&name, value).map(|expr| args.key = Some((name.clone(), expr))),
                "hash_len" => hash_len(&name, value).map(|lit| args.hash_len = Some(lit)),
                "cache_none" => boolean(&name, value).map(|flag| args.cache_none = flag.value),
                "lock" => boolean(&name, value).map(|flag| args.lock = Some(flag.value)),
                "unless" => expr(&name, value).map(|expr| args.unless = Some(expr)),
                "ttl_from" => expr(&name, value).map(|expr| args.ttl_from = Some(expr)),
                "jitter" => string(&name, value).map(|lit| args.jitter = Some(lit)),
                "companions" => boolean(&name, value).map(|flag| args.companions = Some(flag)),
                "runtime" => expr(&name, value).map(|expr| args.runtime = Some(expr)),
                "crate" => path(&name, value).map(|path| args.krate = Some(path)),
                _ => Err(syn::Error::new_spanned(
                    &name,
                    format_args!("unknown option `{key}`; expected one of: {KNOWN}"),
                )),
            };
            if let Err(error) = result {
                errors.push(error);
            }
        }
        for (what, idents) in [("skip", &args.skip), ("segments", &args.segments)] {
            for (i, ident) in idents.iter().enumerate() {
                if idents[..i].contains(ident) {
                    errors.spanned(ident, format_args!("`{ident}` is listed twice in `{what}`"));
                }
            }
        }
        // A domain given in the wrong form was reported where it was written.
        if !seen.iter().any(|key| key == "domain") {
            errors.push(syn::Error::new(
                Span::call_site(),
                "missing `domain = \"...\"`: every cached function needs a domain, e.g. #[redis_cached(domain = \"natal\")]",
            ));
        }
        args
    }
}

fn expr(name: &Ident, value: RawValue) -> syn::Result<Expr> {
    match value {
        RawValue::Eq(expr) => Ok(expr),
        _ => Err(syn::Error::new_spanned(
            name,
            format_args!("expected `{name} = <expression>`"),
        )),
    }
}

/// `form` describes the value in errors; `example` shows one.
fn literal(name: &Ident, value: RawValue, form: &str, example: &str) -> syn::Result<Lit> {
    match value {
        RawValue::Eq(Expr::Lit(ExprLit { lit, .. })) => Ok(lit),
        RawValue::Eq(other) => Err(syn::Error::new_spanned(
            other,
            format_args!("expected {form}"),
        )),
        _ => Err(syn::Error::new_spanned(
            name,
            format_args!("expected `{name} = {example}`"),
        )),
    }
}

fn string(name: &Ident, value: RawValue) -> syn::Result<LitStr> {
    match literal(name, value, "a string literal", "\"...\"")? {
        Lit::Str(lit) => Ok(lit),
        other => Err(syn::Error::new_spanned(other, "expected a string literal")),
    }
}

fn boolean(name: &Ident, value: RawValue) -> syn::Result<LitBool> {
    match literal(name, value, "`true` or `false`", "true")? {
        Lit::Bool(lit) => Ok(lit),
        other => Err(syn::Error::new_spanned(other, "expected `true` or `false`")),
    }
}

fn list(name: &Ident, value: RawValue) -> syn::Result<Vec<Ident>> {
    match value {
        RawValue::List(idents) => Ok(idents.into_iter().collect()),
        _ => Err(syn::Error::new_spanned(
            name,
            format_args!("expected `{name}(argument, ...)`"),
        )),
    }
}

fn path(name: &Ident, value: RawValue) -> syn::Result<Path> {
    match value {
        RawValue::Eq(Expr::Path(expr)) if expr.qself.is_none() => Ok(expr.path),
        RawValue::Eq(Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        })) => lit.parse(),
        RawValue::Eq(other) => Err(syn::Error::new_spanned(
            other,
            "expected a path, e.g. `crate = ::my_cache`",
        )),
        _ => Err(syn::Error::new_spanned(name, "expected `crate = path`")),
    }
}

fn duration(name: &Ident, value: RawValue) -> syn::Result<DurationArg> {
    const FORM: &str =
        "a whole number of seconds or a duration string such as \"90s\", \"15m\", \"1h\", \"1d\"";
    match literal(name, value, FORM, "3600")? {
        Lit::Int(lit) => lit.base10_parse::<u64>().map(|_| DurationArg::Seconds(lit)),
        Lit::Str(lit) => Ok(DurationArg::Text(lit)),
        other => Err(syn::Error::new_spanned(
            other,
            format_args!("expected {FORM}"),
        )),
    }
}

fn near(name: &Ident, value: RawValue) -> syn::Result<NearArg> {
    const FORM: &str = "`true`, `false`, or a duration string such as \"30s\"";
    match literal(name, value, FORM, "true")? {
        Lit::Bool(lit) => Ok(NearArg::Flag(lit.value)),
        Lit::Int(lit) => lit
            .base10_parse::<u64>()
            .map(|_| NearArg::Within(DurationArg::Seconds(lit))),
        Lit::Str(lit) => Ok(NearArg::Within(DurationArg::Text(lit))),
        other => Err(syn::Error::new_spanned(
            other,
            format_args!("expected {FORM}"),
        )),
    }
}

fn early_refresh(name: &Ident, value: RawValue) -> syn::Result<EarlyArg> {
    const FORM: &str = "`true`, `false`, or a positive number β such as `2.0`";
    match literal(name, value, FORM, "true")? {
        Lit::Bool(lit) => Ok(EarlyArg::Flag(lit.value)),
        Lit::Float(lit) => lit
            .base10_parse::<f64>()
            .map(|_| EarlyArg::Beta(lit.base10_digits().to_owned(), lit.span())),
        Lit::Int(lit) => lit
            .base10_parse::<u32>()
            .map(|_| EarlyArg::Beta(lit.base10_digits().to_owned(), lit.span())),
        other => Err(syn::Error::new_spanned(
            other,
            format_args!("expected {FORM}"),
        )),
    }
}

fn hash_len(name: &Ident, value: RawValue) -> syn::Result<LitInt> {
    const FORM: &str = "a number of hex characters from 8 to 64";
    match literal(name, value, FORM, "12")? {
        Lit::Int(lit) => lit.base10_parse::<usize>().map(|_| lit),
        other => Err(syn::Error::new_spanned(
            other,
            format_args!("expected {FORM}"),
        )),
    }
}
