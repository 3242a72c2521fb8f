//! Rewrites the function body; the signature and attributes are re-emitted untouched.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens as _, format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{Block, Expr, GenericParam, ItemFn, ReturnType, Stmt};

use crate::attr::{Args, Ttl};
use crate::func::{self, KeyArgs};

pub(crate) fn redis_cached(args: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                "#[redis_cached] can only be applied to a function",
            );
            return with_error(item, error);
        }
    };
    let checked = Args::parse(args).and_then(|args| {
        let key_args = func::analyse(&function, &args)?;
        Ok((args, key_args))
    });
    match checked {
        Ok((args, key_args)) => rewrite(function, &args, &key_args),
        // The function is still emitted so the rest of the crate type-checks
        // and IDEs keep working while the attribute is being fixed.
        Err(error) => with_error(item, error),
    }
}

/// Whether the function has a receiver or names `Self` anywhere: then the
/// implementing type (with its generic arguments) is part of the key, so
/// `Wrapper<u8>::f` and `Wrapper<String>::f`, or one trait default method
/// in two impls, never share entries.
fn mentions_self(function: &ItemFn) -> bool {
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

fn with_error(item: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    quote!(#item #error)
}

fn rewrite(mut function: ItemFn, args: &Args, key_args: &KeyArgs) -> TokenStream {
    let krate = match &args.krate {
        Some(path) => quote!(#path),
        None => quote!(::cached_redis),
    };
    let private = quote!(#krate::__private);
    let local = |name: &str| format_ident!("__cached_redis_{}", name, span = Span::mixed_site());
    let (site, runtime, key, policy, here) = (
        local("site"),
        local("runtime"),
        local("key"),
        local("policy"),
        local("here"),
    );

    let domain = &args.domain;
    let version = match &args.version {
        Some(version) => quote!(#version),
        None => quote!("v1"),
    };
    let ttl = match &args.ttl {
        Some(Ttl::Seconds(secs)) => {
            quote!(::core::option::Option::Some(::core::time::Duration::from_secs(#secs)))
        }
        // A named const, not an inline `const { }` block: `cargo check`
        // evaluates the former, so a bad literal fails even without a build.
        // Every token of the call carries the literal's span, so the
        // evaluation error points at the literal, not the whole attribute.
        Some(Ttl::Text(text)) => {
            let private = respan(private.clone(), text.span());
            quote_spanned! {text.span()=>
            {
                const TTL: ::core::time::Duration = #private::ttl_literal(#text);
                ::core::option::Option::Some(TTL)
            }
            }
        }
        None => quote!(::core::option::Option::None),
    };
    let hash_len = match &args.hash_len {
        Some(len) => quote!(#len),
        None => quote!(16),
    };

    let runtime_setup = match &args.runtime {
        // Cloned (one `Arc`) so the expression's borrow ends here and the
        // body may still move or mutably use what it borrowed.
        Some(expr) => quote_spanned! {expr.span()=>
            let #runtime = &#private::Runtime::clone(#private::as_runtime(&(#expr)));
        },
        None => quote!(let #runtime = #private::default_runtime();),
    };
    let parts = match &args.key {
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
    // The nested item that names the function carries no generics, so the
    // instantiation goes into the key: two instantiations never share one.
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
        mentions_self(&function).then(|| quote!(#private::key_type::<Self>(&mut #key);));
    let segments = args
        .segments
        .iter()
        .map(|arg| quote_spanned!(arg.span()=> #private::key_segment(&mut #key, &#arg);));

    let output = match &function.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    // Spanned at the return type, so "not Serialize" errors point there.
    let output_span = match &function.sig.output {
        ReturnType::Default => function.sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let select_policy = if args.cache_none {
        quote_spanned!(output_span=> (&&&#private::ProbeNone::<#output>::new()).__cached_redis_policy())
    } else {
        quote_spanned!(output_span=> (&&&#private::Probe::<#output>::new()).__cached_redis_policy())
    };

    let stmts = &function.block.stmts;
    let call = if function.sig.asyncness.is_some() {
        // The unreachable early return fixes the async block's output type,
        // so `?` and `return` in the body infer as in the original function.
        quote! {
            #private::call_async(#runtime, &#site, #key, #policy, async move {
                #[allow(
                    unknown_lints, unreachable_code, clippy::diverging_sub_expression,
                    clippy::empty_loop, clippy::let_unit_value, clippy::needless_return
                )]
                if false {
                    let __cached_redis_unreachable: #output = loop {};
                    return __cached_redis_unreachable;
                }
                #(#stmts)*
            })
            .await
        }
    } else {
        quote! {
            #private::call_sync(#runtime, &#site, #key, #policy, move || -> #output { #(#stmts)* })
        }
    };

    let body = quote! {
        #[allow(unused_imports)]
        use #private::{ViaOption as _, ViaPlain as _, ViaResult as _};
        let #site = #private::Site {
            domain: #domain,
            version: #version,
            function: {
                fn #here() {}
                #private::type_name_of_val(&#here)
            },
            ttl: #ttl,
            hash_len: #hash_len,
        };
        #runtime_setup
        #[allow(unused_mut)]
        let mut #key = #private::KeyInput::new(&#site);
        #(#generics)*
        #self_type
        #(#parts)*
        #(#segments)*
        let #policy = #select_policy;
        #call
    };
    *function.block = Block {
        brace_token: function.block.brace_token,
        stmts: vec![Stmt::Expr(Expr::Verbatim(body), None)],
    };
    quote!(#function)
}
