//! The companions generated beside a cached function: its key, and
//! invalidate, refresh and warm, for given arguments.
//!
//! For a free function they are associated functions of a type named after
//! it — `natal_chart::key(&req)` — which lives in the type namespace, so it
//! cannot clash with the function, and, unlike a module, sees every item the
//! function sees (a function inside a block included). An `impl` can hold
//! neither types nor modules: a method's companions are associated
//! functions named after it (`natal_key`, …), asked for with
//! `companions = true`, since a trait impl can hold no other items and the
//! attribute cannot tell one from an inherent impl.
//!
//! The call site moves out of the body into an accessor both share, since
//! memory entries are told apart by their site's address; `key` and
//! `invalidate` build the key with the body's own generators.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens as _, format_ident, quote};
use syn::visit_mut::VisitMut;
use syn::{
    FnArg, GenericParam, Ident, ItemFn, Lifetime, LifetimeParam, Pat, Receiver, ReceiverKind,
    Safety, Type, TypeReference,
};

use crate::attr::{Args, Errors};
use crate::expand::{Expansion, local, mentions_self, output};
use crate::func::KeyArgs;

/// Where the call site lives, and so which companions there are.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// None: the site is a `static` in the body.
    Off,
    /// A free function's: a type named after it.
    Beside,
    /// A method's: associated functions named after it.
    Associated,
}

/// Decides the form; `companions = true` on an `unsafe fn` is an error.
pub(crate) fn form(function: &ItemFn, args: &Args, errors: &mut Errors) -> Form {
    let asked = args.companions.as_ref();
    if let Some(flag) = asked
        && flag.value
        && is_unsafe(function)
    {
        errors.spanned(
            flag,
            "companions call the function, and cannot call an `unsafe fn`; leave `companions` out",
        );
        return Form::Off;
    }
    let method = mentions_self(function);
    match asked.map(|flag| flag.value) {
        Some(false) => Form::Off,
        None if method || is_unsafe(function) => Form::Off,
        _ if method => Form::Associated,
        _ => Form::Beside,
    }
}

fn is_unsafe(function: &ItemFn) -> bool {
    matches!(function.sig.safety, Safety::Unsafe(_))
}

impl Form {
    /// The name of the accessor that returns the shared site, if any: in
    /// the type named after the function, or beside a method.
    fn accessor_name(self, function: &Ident) -> Option<Ident> {
        match self {
            Form::Off => None,
            Form::Beside => Some(format_ident!("__cached_redis_site")),
            Form::Associated => Some(format_ident!("__cached_redis_site_{}", function)),
        }
    }

    /// The path of that accessor, as the function's body calls it.
    pub(crate) fn accessor(self, function: &Ident) -> Option<TokenStream> {
        let name = self.accessor_name(function)?;
        Some(match self {
            Form::Associated => quote!(Self::#name),
            _ => quote!(#function::#name),
        })
    }
}

/// One argument as a companion takes it.
struct Input<'a> {
    /// Its name in the companion: the function's, or a fresh one for a
    /// pattern, which is then bound as in the function.
    name: Ident,
    ty: &'a Type,
    rebind: Option<&'a Pat>,
}

fn inputs(function: &ItemFn) -> (Option<&Receiver>, Vec<Input<'_>>) {
    let mut receiver = None;
    let mut typed = Vec::new();
    for (i, arg) in function.sig.inputs.iter().enumerate() {
        match arg {
            FnArg::Receiver(found) => receiver = Some(found),
            FnArg::Typed(arg) => typed.push(match &*arg.pat {
                Pat::Ident(pat) if pat.subpat.is_none() && pat.by_ref.is_none() => Input {
                    name: pat.ident.clone(),
                    ty: &arg.ty,
                    rebind: None,
                },
                pat => Input {
                    name: format_ident!("__cached_redis_arg{}", i, span = Span::mixed_site()),
                    ty: &arg.ty,
                    rebind: Some(pat),
                },
            }),
        }
    }
    (receiver, typed)
}

impl Expansion<'_> {
    /// The companions, beside the function.
    pub(crate) fn companions(&self, function: &ItemFn, key_args: &KeyArgs) -> TokenStream {
        let (Some(accessor), Some(accessor_name)) = (
            self.form.accessor(&function.sig.ident),
            self.form.accessor_name(&function.sig.ident),
        ) else {
            return TokenStream::new();
        };
        let private = &self.private;
        let sig = &function.sig;
        let (ident, vis) = (&sig.ident, &function.vis);
        let name = ident.to_string();
        let cfgs: Vec<_> = function
            .attrs
            .iter()
            .filter(|attr| attr.path().is_ident("cfg"))
            .collect();
        // Spanned at the function's name: "defined here" points there.
        let named = |suffix: &str| match self.form {
            Form::Associated => format_ident!("{}_{}", ident, suffix, span = ident.span()),
            _ => format_ident!("{}", suffix, span = ident.span()),
        };
        // `here` nests in the accessor: a type's (`natal_chart::site`) or
        // an impl's (`Type::site_natal_chart`).
        let up = if self.form == Form::Beside { 3usize } else { 2 };
        let (site_items, site_static) = self.site(Some((ident, up, sig.asyncness.is_some())));
        let site_accessor = quote! {
            #[doc(hidden)]
            #[allow(non_snake_case)]
            #vis fn #accessor_name() -> &'static #private::Site {
                #site_items
                &#site_static
            }
        };

        let (receiver, args) = inputs(function);
        let (impl_generics, where_clause) = (&sig.generics, &sig.generics.where_clause);
        let decl: Vec<TokenStream> = args
            .iter()
            .map(|Input { name, ty, .. }| quote!(#name: #ty))
            .collect();
        let receiver_decl = receiver.map(|receiver| quote!(#receiver,));
        let rebind: Vec<TokenStream> = args
            .iter()
            .filter_map(|input| {
                let (name, pat) = (&input.name, input.rebind?);
                Some(quote!(let #pat = #name;))
            })
            .collect();
        let names: Vec<&Ident> = args.iter().map(|input| &input.name).collect();

        // `key` and `invalidate`: the body's own generators, on the shared site.
        let [site, runtime_local, key_local, policy_local] =
            ["site", "runtime", "key", "policy"].map(local);
        let runtime = self.runtime();
        let key = self.key(function, key_args);
        let policy = self.policy(function);
        let probes = self.probes();
        let build = quote! {
            #probes
            #(#rebind)*
            let #site: &'static #private::Site = #accessor();
            #runtime
            #key
            #policy
        };
        let (key_fn, invalidate_fn) = (named("key"), named("invalidate"));
        let key_doc = format!(
            " The cache key `{name}` uses for these arguments: for logs, and for \
             `cached-redis-cli inspect`. Built by the function's own code, so it \
             never differs from the key a call uses."
        );
        let invalidate_doc = format!(
            " Removes `{name}`'s cached value for these arguments: from this \
             process's memory and near-cache, then from Redis, which tells every \
             other process's near-cache. `.await` it, or `.wait()` for it in sync \
             code; resolves to whether an entry was there."
        );
        let lints = quote!(#[allow(unused_variables, unused_mut, clippy::unused_unit)]);
        let mut items = vec![
            quote! {
                #[doc = #key_doc]
                #lints
                #vis fn #key_fn #impl_generics (#receiver_decl #(#decl),*)
                    -> ::core::result::Result<#private::CacheKey, #private::KeyError>
                #where_clause
                {
                    #build
                    #private::companion_key(#runtime_local, #site, #key_local, &#policy_local)
                }
            },
            quote! {
                #[doc = #invalidate_doc]
                #lints
                #vis fn #invalidate_fn #impl_generics (#receiver_decl #(#decl),*)
                    -> #private::Operation<
                        'static,
                        ::core::result::Result<bool, #private::InvalidateError>,
                    >
                #where_clause
                {
                    #build
                    #private::invalidate(#runtime_local, #site, #key_local, &#policy_local)
                }
            },
        ];

        // `refresh` and `warm` call the function itself.
        let turbofish = {
            let params: Vec<TokenStream> = sig
                .generics
                .params
                .iter()
                .filter_map(|param| match param {
                    GenericParam::Type(param) => Some(param.ident.to_token_stream()),
                    GenericParam::Const(param) => Some(param.ident.to_token_stream()),
                    GenericParam::Lifetime(_) => None,
                })
                .collect();
            (!params.is_empty()).then(|| quote!(::<#(#params),*>))
        };
        let callee = match self.form {
            Form::Associated => quote!(Self::#ident #turbofish),
            _ => quote!(#ident #turbofish),
        };
        let this = receiver.map(|_| quote!(self,));
        let (out, _) = output(function);
        let refresh_fn = named("refresh");
        let refresh_doc = format!(
            " Calls `{name}` with these arguments and stores what it returns, \
             whatever is cached: a forced refresh. The cached calls its body makes \
             run as usual."
        );
        let call = quote!(#callee(#this #(#names),*));
        items.push(match sig.asyncness {
            Some(_) => quote! {
                #[doc = #refresh_doc]
                #lints
                #vis async fn #refresh_fn #impl_generics (#receiver_decl #(#decl),*) -> #out
                #where_clause
                {
                    #private::refresh(#call).await
                }
            },
            None => quote! {
                #[doc = #refresh_doc]
                #lints
                #vis fn #refresh_fn #impl_generics (#receiver_decl #(#decl),*) -> #out
                #where_clause
                {
                    #private::refresh_sync(move || #call)
                }
            },
        });
        items.extend(self.warm(function, receiver, &args, &callee));

        match self.form {
            Form::Associated => {
                let cfgs = quote!(#(#cfgs)*);
                quote! {
                    #cfgs #site_accessor
                    #(#cfgs #items)*
                }
            }
            _ => {
                let doc = format!(
                    " The cache companions of the function `{name}`: its key, and \
                     `invalidate`, `refresh` and `warm`, for given arguments. Not a \
                     value: a name for them, beside the function."
                );
                quote! {
                    #(#cfgs)*
                    #[doc = #doc]
                    #[allow(non_camel_case_types)]
                    #vis struct #ident {}

                    #(#cfgs)*
                    impl #ident {
                        #site_accessor
                        #(#items)*
                    }
                }
            }
        }
    }
}

impl Expansion<'_> {
    /// `warm`: for a function whose receiver, if any, is `&self`, and whose
    /// argument types can be named in an iterator's item (no `impl Trait`).
    fn warm(
        &self,
        function: &ItemFn,
        receiver: Option<&Receiver>,
        args: &[Input<'_>],
        callee: &TokenStream,
    ) -> Option<TokenStream> {
        let shared =
            |receiver: &Receiver| matches!(receiver.kind, ReceiverKind::Reference(_, _, None));
        if !receiver.is_none_or(shared) || args.iter().any(|input| has_impl_trait(input.ty)) {
            return None;
        }
        let private = &self.private;
        let sig = &function.sig;
        let vis = &function.vis;
        let name = sig.ident.to_string();
        let warm_fn = match self.form {
            Form::Associated => format_ident!("{}_warm", sig.ident, span = sig.ident.span()),
            _ => format_ident!("warm", span = sig.ident.span()),
        };
        let items_lifetime = Lifetime::new("'__cached_redis_items", Span::call_site());
        let mut elided = NameElided {
            lifetime: &items_lifetime,
            named: false,
        };
        let types: Vec<Type> = args
            .iter()
            .map(|input| {
                let mut ty = input.ty.clone();
                elided.visit_type_mut(&mut ty);
                ty
            })
            .collect();
        let names: Vec<Ident> = (0..args.len())
            .map(|i| format_ident!("__cached_redis_item{}", i, span = Span::mixed_site()))
            .collect();
        let (item, pattern) = match (&types[..], &names[..]) {
            ([ty], [name]) => (quote!(#ty), quote!(#name)),
            _ => (quote!((#(#types,)*)), quote!((#(#names,)*))),
        };
        let mut generics = sig.generics.clone();
        if elided.named {
            generics.params.insert(
                0,
                GenericParam::Lifetime(LifetimeParam::new(items_lifetime.clone())),
            );
        }
        let this = receiver.map(|_| quote!(self,));
        let receiver_decl = receiver.map(|receiver| quote!(#receiver,));
        let call = quote!(#callee(#this #(#names),*));
        let report = quote!(#private::WarmReport);
        let doc = format!(
            " Calls `{name}` once per item of `items` (its arguments), at most \
             `concurrency` calls at a time: a cached value counts as a hit, a \
             missing one is computed and stored. `progress` is told the counts \
             after each call; the result is the final counts."
        );
        let lints = quote!(#[allow(clippy::unused_unit, clippy::let_unit_value)]);
        if sig.asyncness.is_some() {
            let (impl_generics, _, where_clause) = generics.split_for_impl();
            return Some(quote! {
                #[doc = #doc]
                #[doc = " The calls run on the calling task, concurrently."]
                #lints
                #vis async fn #warm_fn #impl_generics (
                    #receiver_decl
                    items: impl ::core::iter::IntoIterator<Item = #item>,
                    concurrency: usize,
                    progress: impl ::core::ops::FnMut(&#report),
                ) -> #report
                #where_clause
                {
                    #private::warm(items, concurrency, move |#pattern| #call, progress).await
                }
            });
        }
        // Threads: the items, and a receiver, must cross to them. Bounds
        // under a binder, so a type that cannot is an error where `warm` is
        // used, not where the function is defined.
        let items_ty = Ident::new("__CachedRedisItems", Span::mixed_site());
        let position = generics
            .params
            .iter()
            .take_while(|param| matches!(param, GenericParam::Lifetime(_)))
            .count();
        generics
            .params
            .insert(position, GenericParam::Type(items_ty.clone().into()));
        let bound = Lifetime::new("'__cached_redis_x", Span::call_site());
        let clause = generics.make_where_clause();
        if receiver.is_some() {
            clause.predicates.push(syn::parse_quote! {
                for<#bound> &#bound Self: ::core::marker::Sync
            });
        }
        clause.predicates.push(syn::parse_quote! {
            #items_ty: ::core::iter::IntoIterator<Item = #item>
        });
        clause.predicates.push(syn::parse_quote! {
            for<#bound> <#items_ty as ::core::iter::IntoIterator>::IntoIter: ::core::marker::Send
        });
        clause.predicates.push(syn::parse_quote! {
            for<#bound> <#items_ty as ::core::iter::IntoIterator>::Item: ::core::marker::Send
        });
        let (impl_generics, _, where_clause) = generics.split_for_impl();
        Some(quote! {
            #[doc = #doc]
            #[doc = " The calls run on `concurrency` scoped threads."]
            #lints
            #vis fn #warm_fn #impl_generics (
                #receiver_decl
                items: #items_ty,
                concurrency: usize,
                progress: impl ::core::ops::FnMut(&#report) + ::core::marker::Send,
            ) -> #report
            #where_clause
            {
                #private::warm_sync(items, concurrency, move |#pattern| #call, progress)
            }
        })
    }
}

/// Names every elided lifetime of a type (`&T`, `'_`), so it can stand in
/// an iterator's item.
struct NameElided<'a> {
    lifetime: &'a Lifetime,
    named: bool,
}

impl VisitMut for NameElided<'_> {
    fn visit_type_reference_mut(&mut self, reference: &mut TypeReference) {
        if reference.lifetime.is_none() {
            reference.lifetime = Some(self.lifetime.clone());
            self.named = true;
        }
        syn::visit_mut::visit_type_reference_mut(self, reference);
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = self.lifetime.clone();
            self.named = true;
        }
    }
}

fn has_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl VisitMut for Finder {
        fn visit_type_impl_trait_mut(&mut self, _: &mut syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type_mut(&mut ty.clone());
    finder.0
}
