//! Rewrites the function body; the signature and attributes are re-emitted
//! untouched. The new body is put together from one generator per part:
//! the call site (a `static` with the checked literals), the key, the
//! storage policy, and the call into the runtime.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens as _, format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{Block, Expr, FnArg, GenericParam, Ident, ItemFn, ReturnType, Stmt};

use crate::attr::{Args, DurationArg, EarlyArg, Errors, NearArg};
use crate::companion::{self, Form};
use crate::func::{self, KeyArgs};

pub(crate) fn redis_cached(args: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                "#[redis_cached] can only be applied to a function",
            );
            let error = error.to_compile_error();
            return quote!(#item #error);
        }
    };
    let mut errors = Errors::default();
    let args = Args::parse(args, &mut errors);
    let key_args = func::analyse(&function, &args, &mut errors);
    let form = companion::form(&function, &args, &mut errors);
    let expansion = Expansion::new(&args, form);
    match errors.finish() {
        Ok(()) => expansion.rewrite(function, &key_args),
        // The function is still emitted so the rest of the crate type-checks
        // and IDEs keep working while the attribute is being fixed; the
        // literals are still checked, so every mistake shows in one build.
        Err(error) => {
            let error = error.to_compile_error();
            let checks = expansion
                .literal_checks()
                .into_iter()
                .map(|(name, ty, check)| quote!(#[allow(dead_code)] const #name: #ty = #check;));
            quote!(#item #error const _: () = { #(#checks)* };)
        }
    }
}

pub(crate) struct Expansion<'a> {
    pub(crate) args: &'a Args,
    /// `::cached_redis::__private`, or under `crate = path`.
    pub(crate) private: TokenStream,
    /// Where the call site lives, and so which companions there are.
    pub(crate) form: Form,
}

/// A generated local, hygienic and prefixed.
pub(crate) fn local(name: &str) -> Ident {
    format_ident!("__cached_redis_{}", name, span = Span::mixed_site())
}

/// A generated item in the function body (items are not hygienic: prefixed).
fn item(name: &str) -> Ident {
    format_ident!("__CACHED_REDIS_{}", name, span = Span::mixed_site())
}

impl<'a> Expansion<'a> {
    fn new(args: &'a Args, form: Form) -> Self {
        let krate = match &args.krate {
            Some(path) => quote!(#path),
            None => quote!(::cached_redis),
        };
        Expansion {
            args,
            private: quote!(#krate::__private),
            form,
        }
    }

    fn rewrite(&self, mut function: ItemFn, key_args: &KeyArgs) -> TokenStream {
        let site = self.site_binding(&function);
        let runtime = self.runtime();
        let key = self.key(&function, key_args);
        let policy = self.policy(&function);
        let call = self.call(&function);
        let companions = self.companions(&function, key_args);
        let probes = self.probes();
        let body = quote! {
            #probes
            #site
            #runtime
            #key
            #policy
            #call
        };
        *function.block = Block {
            brace_token: function.block.brace_token,
            stmts: vec![Stmt::Expr(Expr::Verbatim(body), None)],
        };
        quote!(#function #companions)
    }

    /// The traits whose methods choose, by autoref, how a value is stored.
    pub(crate) fn probes(&self) -> TokenStream {
        let private = &self.private;
        quote! {
            #[allow(unused_imports)]
            use #private::{
                ViaClone as _, ViaDecode as _, ViaLocal as _, ViaOption as _, ViaPlain as _,
                ViaResult as _, ViaSend as _,
            };
        }
    }

    /// Binds the call site to a local: a `static` in the body, or, when
    /// the companions share it, the one their accessor returns.
    pub(crate) fn site_binding(&self, function: &ItemFn) -> TokenStream {
        let (private, site) = (&self.private, local("site"));
        match self.form.accessor(&function.sig.ident) {
            None => {
                let (items, name) = self.site(None);
                quote! {
                    #items
                    let #site: &'static #private::Site = &#name;
                }
            }
            Some(accessor) => quote!(let #site: &'static #private::Site = #accessor();),
        }
    }

    /// Each literal the runtime's rules must accept, as a const item's name,
    /// type and checked value. Evaluated at compile time (a named const, not
    /// an inline `const { }`: `cargo check` evaluates the former), and every
    /// token of the check carries the literal's span, so a rejection points
    /// at the literal.
    fn literal_checks(&self) -> Vec<(Ident, TokenStream, TokenStream)> {
        let args = self.args;
        let mut checks = Vec::new();
        let mut check = |name: &str, ty: TokenStream, span: Span, value: TokenStream| {
            let private = respan(self.private.clone(), span);
            let value = respan(value, span);
            checks.push((item(name), ty, quote_spanned!(span=> #private::#value)));
        };
        if let Some(domain) = &args.domain {
            check(
                "DOMAIN",
                quote!(&str),
                domain.span(),
                quote!(domain_literal(#domain)),
            );
        }
        if let Some(version) = &args.version {
            check(
                "VERSION",
                quote!(&str),
                version.span(),
                quote!(version_literal(#version)),
            );
        }
        if let Some(len) = &args.hash_len {
            check(
                "HASH_LEN",
                quote!(usize),
                len.span(),
                quote!(hash_len_literal(#len)),
            );
        }
        if let Some(EarlyArg::Beta(digits, span)) = &args.early_refresh {
            // An `f64` whatever was written: `2` and `2.0` alike.
            let beta = format!("{digits}f64")
                .parse::<TokenStream>()
                .unwrap_or_else(|_| quote!(f64::NAN));
            check(
                "EARLY_REFRESH",
                quote!(f64),
                *span,
                quote!(early_refresh_literal(#beta)),
            );
        }
        if let Some(jitter) = &args.jitter {
            check(
                "JITTER",
                quote!(f64),
                jitter.span(),
                quote!(jitter_literal(#jitter)),
            );
        }
        let duration = quote!(::core::time::Duration);
        let near = match &args.near {
            Some(NearArg::Within(within)) => Some(within),
            _ => None,
        };
        let options = [
            ("TTL", args.ttl.as_ref(), quote!(Ttl)),
            (
                "STALE_IF_ERROR",
                args.stale_if_error.as_ref(),
                quote!(StaleIfError),
            ),
            ("TIMEOUT", args.timeout.as_ref(), quote!(Timeout)),
            ("NEAR", near, quote!(Near)),
        ];
        for (name, arg, option) in options {
            let private = &self.private;
            let option = quote!(#private::DurationOption::#option);
            match arg {
                Some(DurationArg::Seconds(secs)) => check(
                    name,
                    duration.clone(),
                    secs.span(),
                    quote!(duration_seconds(#option, #secs)),
                ),
                Some(DurationArg::Text(text)) => check(
                    name,
                    duration.clone(),
                    text.span(),
                    quote!(duration_literal(#option, #text)),
                ),
                None => {}
            }
        }
        checks
    }

    /// The call site: its checked literals and the `static` the runtime
    /// keeps per-site state in, and that static's name. `named` is given
    /// for a site outside the body: the function's name, and how many
    /// levels its nested `here` lies below the function's parent — so the
    /// site names the function as the body would, and keys do not change.
    pub(crate) fn site(&self, named: Option<(&Ident, usize, bool)>) -> (TokenStream, Ident) {
        let private = &self.private;
        let checks = self.literal_checks();
        let consts = checks
            .iter()
            .map(|(name, ty, value)| quote!(const #name: #ty = #value;));
        let defined = |name: &str| checks.iter().any(|(ident, ..)| *ident == item(name));
        let [domain, version, hash_len] = ["DOMAIN", "VERSION", "HASH_LEN"].map(item);
        let optional = |name: &str| {
            let value = item(name);
            if defined(name) {
                quote!(::core::option::Option::Some(#value))
            } else {
                quote!(::core::option::Option::None)
            }
        };
        let (ttl, stale_if_error, timeout) = (
            optional("TTL"),
            optional("STALE_IF_ERROR"),
            optional("TIMEOUT"),
        );
        let near = match &self.args.near {
            None => quote!(#private::Near::Default),
            Some(NearArg::Flag(true)) => quote!(#private::Near::On),
            Some(NearArg::Flag(false)) => quote!(#private::Near::Off),
            // Checked like the other literals (a rejected one is reported
            // there); this names the checked value.
            Some(NearArg::Within(_)) => {
                let bound = item("NEAR");
                quote!(#private::Near::Within(#bound))
            }
        };
        let version = if defined("VERSION") {
            quote!(#version)
        } else {
            quote!(#private::DEFAULT_VERSION)
        };
        let hash_len = if defined("HASH_LEN") {
            quote!(#hash_len)
        } else {
            quote!(#private::DEFAULT_HASH_LEN)
        };
        let lock = match self.args.lock {
            Some(lock) => quote!(::core::option::Option::Some(#lock)),
            None => quote!(::core::option::Option::None),
        };
        let early_refresh = match &self.args.early_refresh {
            None | Some(EarlyArg::Flag(false)) => quote!(::core::option::Option::None),
            Some(EarlyArg::Flag(true)) => quote!(::core::option::Option::Some(1.0)),
            Some(EarlyArg::Beta(..)) => {
                let beta = item("EARLY_REFRESH");
                quote!(::core::option::Option::Some(#beta))
            }
        };
        let jitter = optional("JITTER");
        let (here, site) = (local("here"), item("SITE"));
        let name = match named {
            // Names the function: `type_name_of_val` of an item nested in it.
            None => quote!(#private::type_name_of_val(&#here)),
            Some((function, up, in_async)) => {
                let function = function.to_string();
                quote! {
                    static NAME: #private::OnceLock<::std::string::String> =
                        #private::OnceLock::new();
                    NAME.get_or_init(|| {
                        #private::function_name(
                            #private::type_name_of_val(&#here), #up, #function, #in_async,
                        )
                    })
                }
            }
        };
        let items = quote! {
            #(#consts)*
            fn #here() -> &'static str {
                #name
            }
            static #site: #private::Site =
                #private::Site::new(#domain, #version, #hash_len, #private::SiteOptions {
                    ttl: #ttl,
                    lock: #lock,
                    stale_if_error: #stale_if_error,
                    timeout: #timeout,
                    near: #near,
                    early_refresh: #early_refresh,
                    jitter: #jitter,
                }, #here);
        };
        (items, site)
    }

    pub(crate) fn runtime(&self) -> TokenStream {
        let (private, runtime) = (&self.private, local("runtime"));
        match &self.args.runtime {
            // Cloned (one `Arc`) so the expression's borrow ends here and the
            // body may still move or mutably use what it borrowed.
            Some(expr) => quote_spanned! {expr.span()=>
                let #runtime = &#private::Runtime::clone(#private::as_runtime(&(#expr)));
            },
            None => quote!(let #runtime = #private::default_runtime();),
        }
    }

    /// The key input: the function's type parameters and `Self` (so two
    /// instantiations never share a key), the key arguments, the segments.
    pub(crate) fn key(&self, function: &ItemFn, key_args: &KeyArgs) -> TokenStream {
        let (private, key, site) = (&self.private, local("key"), local("site"));
        let generics = function
            .sig
            .generics
            .params
            .iter()
            .filter_map(|param| match param {
                GenericParam::Type(param) => {
                    let ident = &param.ident;
                    Some(quote!(#private::key_type::<#ident>(&mut #key);))
                }
                GenericParam::Const(param) => {
                    let (ident, name) = (&param.ident, param.ident.to_string());
                    Some(quote!(#private::key_part(&mut #key, #name, &#ident);))
                }
                _ => None,
            });
        let self_type =
            mentions_self(function).then(|| quote!(#private::key_type::<Self>(&mut #key);));
        let parts: Vec<TokenStream> = match &self.args.key {
            Some((name, expr)) => {
                let name = name.to_string();
                vec![quote_spanned!(expr.span()=> #private::key_part(&mut #key, #name, &(#expr));)]
            }
            None => key_args
                .hashed
                .iter()
                .map(|arg| {
                    let name = arg.to_string();
                    quote_spanned!(arg.span()=> #private::key_part(&mut #key, #name, &#arg);)
                })
                .collect(),
        };
        let segments = self
            .args
            .segments
            .iter()
            .map(|arg| quote_spanned!(arg.span()=> #private::key_segment(&mut #key, &#arg);));
        quote! {
            #[allow(unused_mut)]
            let mut #key = #private::key_input(#site);
            #(#generics)*
            #self_type
            #(#parts)*
            #(#segments)*
        }
    }

    /// What is stored, chosen by the return type (see the runtime's `policy`).
    pub(crate) fn policy(&self, function: &ItemFn) -> TokenStream {
        let (private, policy) = (&self.private, local("policy"));
        let (output, span) = output(function);
        let probe = if self.args.cache_none {
            quote!(ProbeNone)
        } else {
            quote!(Probe)
        };
        // A `Clone` value is served from memory as a clone of a decoded copy.
        // Not tried for a return type that names a lifetime: the choice
        // needs `'static`, which a type borrowing for `'a` would be asked
        // for (and fail to compile) rather than passed over.
        let copies = (!names_lifetime(&output)).then(|| {
            quote_spanned! {span=>
                let #policy = (&&#private::Copies(#policy)).__cached_redis_copies();
            }
        });
        // The conditions on what is stored, each spanned at its expression
        // so a function of the wrong type is reported there.
        let unless = self
            .args
            .unless
            .as_ref()
            .map(|expr| quote_spanned!(expr.span()=> .unless(#expr)));
        let ttl_from = self
            .args
            .ttl_from
            .as_ref()
            .map(|expr| quote_spanned!(expr.span()=> .ttl_from(#expr)));
        let conditions = (unless.is_some() || ttl_from.is_some()).then(|| {
            quote! {
                let #policy = #private::Conditions::new(#policy) #unless #ttl_from;
            }
        });
        // Spanned at the return type, so "not Serialize" errors point there.
        let selection = quote_spanned! {span=>
            let #policy = (&&&#private::#probe::<#output>::new()).__cached_redis_policy();
            #copies
        };
        quote!(#selection #conditions)
    }

    fn call(&self, function: &ItemFn) -> TokenStream {
        let private = &self.private;
        let [runtime, key, policy, body, detach_local, site] =
            ["runtime", "key", "policy", "body", "detach", "site"].map(local);
        let (output, _) = output(function);
        let stmts = &function.block.stmts;
        if function.sig.asyncness.is_some() {
            // With `early_refresh` or `timeout`, a body that owns its
            // arguments outlives the call (a background refresh, a body
            // finishing past its soft limit). Not tried when an argument
            // borrows, nor without those options: the choice needs
            // `'static` and `Send`, which for a borrowing or non-`Send`
            // body would be asked for rather than passed over.
            let outlives = self.args.early_refresh.is_some() || self.args.timeout.is_some();
            let detach = if outlives && owns_arguments(function) {
                quote!((&&#private::Detach::of(&#policy, &#body)).__cached_redis_detach())
            } else {
                quote!(::core::option::Option::None)
            };
            // The unreachable early return fixes the async block's output type,
            // so `?` and `return` in the body infer as in the original function.
            quote! {
                let #body = async move {
                    #[allow(
                        unknown_lints, unreachable_code, clippy::diverging_sub_expression,
                        clippy::empty_loop, clippy::let_unit_value, clippy::needless_return
                    )]
                    if false {
                        let __cached_redis_unreachable: #output = loop {};
                        return __cached_redis_unreachable;
                    }
                    #(#stmts)*
                };
                let #detach_local = #detach;
                #private::call_async(
                    #runtime, #site, #key, #policy,
                    #private::Body::new(#body, #detach_local),
                )
                .await
            }
        } else {
            quote! {
                #private::call_sync(#runtime, #site, #key, #policy, move || -> #output { #(#stmts)* })
            }
        }
    }
}

/// The function's return type (`()` if none) and where to point errors about it.
pub(crate) fn output(function: &ItemFn) -> (TokenStream, Span) {
    match &function.sig.output {
        ReturnType::Default => (quote!(()), function.sig.ident.span()),
        ReturnType::Type(_, ty) => (quote!(#ty), ty.span()),
    }
}

/// Whether the function has a receiver or names `Self` anywhere: then the
/// implementing type (with its generic arguments) is part of the key, so
/// `Wrapper<u8>::f` and `Wrapper<String>::f`, or one trait default method
/// in two impls, never share entries.
pub(crate) fn mentions_self(function: &ItemFn) -> bool {
    fn scan(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            TokenTree::Ident(ident) => ident == "Self",
            TokenTree::Group(group) => scan(group.stream()),
            _ => false,
        })
    }
    function.sig.receiver().is_some()
        || scan(function.sig.to_token_stream())
        || scan(function.block.to_token_stream())
}

/// Whether every argument is taken by value, with no lifetime or reference
/// in its type, and there is no receiver.
fn owns_arguments(function: &ItemFn) -> bool {
    function.sig.inputs.iter().all(|arg| match arg {
        FnArg::Typed(arg) => !names_lifetime(&arg.ty.to_token_stream()),
        FnArg::Receiver(_) => false,
    })
}

/// Whether `ty` names a lifetime (`'a`, `'_`) or a reference.
pub(crate) fn names_lifetime(ty: &TokenStream) -> bool {
    ty.clone().into_iter().any(|token| match token {
        TokenTree::Punct(punct) => matches!(punct.as_char(), '\'' | '&'),
        TokenTree::Group(group) => names_lifetime(&group.stream()),
        _ => false,
    })
}

fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = TokenTree::Group(inner);
            }
            token.set_span(span);
            token
        })
        .collect()
}
