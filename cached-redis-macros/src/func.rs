//! What the attribute needs to know about the function it rewrites.

use syn::{FnArg, Ident, ItemFn, Pat, ReturnType, Type};

use crate::attr::{Args, Errors};

/// The function's arguments that go into the key, in declaration order.
pub(crate) struct KeyArgs {
    pub hashed: Vec<Ident>,
}

/// Checks the function against the options and lists the key arguments;
/// every mistake goes to `errors`.
pub(crate) fn analyse(item: &ItemFn, args: &Args, errors: &mut Errors) -> KeyArgs {
    let sig = &item.sig;
    if let Some(constness) = &sig.constness {
        errors.spanned(constness, "`#[redis_cached]` cannot cache a `const fn`");
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(
            variadic,
            "`#[redis_cached]` cannot cache a variadic function",
        );
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && let Type::ImplTrait(ty) = &**ty
    {
        errors.spanned(
            ty,
            "a cached function must return a concrete type: an `impl Trait` value cannot be stored",
        );
    }

    // Receivers are never part of the key: `&self` identifies a place, not a value.
    let mut bound = Vec::new();
    for input in &sig.inputs {
        if let FnArg::Typed(arg) = input
            && let Err(error) = bindings(&arg.pat, &mut bound)
        {
            errors.push(error);
        }
    }
    let known = || {
        let names: Vec<String> = bound.iter().map(|name| format!("`{name}`")).collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    for ident in args.skip.iter().chain(&args.segments) {
        if !bound.contains(ident) {
            let message = format!(
                "`{ident}` is not an argument of this function; its arguments are: {}",
                known()
            );
            errors.spanned(ident, message);
        }
    }
    for ident in &args.segments {
        if args.skip.contains(ident) {
            errors.spanned(
                ident,
                format_args!("`{ident}` is skipped, so it cannot be a key segment"),
            );
        }
    }
    if let (Some((key, _)), Some(first)) = (&args.key, args.skip.first()) {
        errors.spanned(
            first,
            format_args!(
                "`skip` has no effect with `{key}`: only the `{key}` expression is hashed"
            ),
        );
    }
    let hashed = if args.key.is_some() {
        Vec::new()
    } else {
        bound
            .into_iter()
            .filter(|ident| !args.skip.contains(ident))
            .collect()
    };
    KeyArgs { hashed }
}

/// The names a parameter pattern binds. A value the pattern ignores (`_`,
/// `..`) cannot affect the result, so leaving it out of the key is sound.
fn bindings(pat: &Pat, out: &mut Vec<Ident>) -> syn::Result<()> {
    match pat {
        Pat::Ident(pat) => {
            out.push(pat.ident.clone());
            match &pat.subpat {
                Some((_, sub)) => bindings(sub, out),
                None => Ok(()),
            }
        }
        Pat::Wild(_) | Pat::Rest(_) => Ok(()),
        Pat::Reference(pat) => bindings(&pat.pat, out),
        Pat::Paren(pat) => bindings(&pat.pat, out),
        Pat::Type(pat) => bindings(&pat.pat, out),
        Pat::Tuple(pat) => pat.elems.iter().try_for_each(|p| bindings(p, out)),
        Pat::TupleStruct(pat) => pat.elems.iter().try_for_each(|p| bindings(p, out)),
        Pat::Slice(pat) => pat.elems.iter().try_for_each(|p| bindings(p, out)),
        Pat::Struct(pat) => pat
            .fields
            .iter()
            .try_for_each(|field| bindings(&field.pat, out)),
        other => Err(syn::Error::new_spanned(
            other,
            "this argument pattern is not supported in a cached function; bind it to a name",
        )),
    }
}
