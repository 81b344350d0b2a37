//! Code generation: reads [`Args`] and the function, writes the function back
//! with the lock taken before its body.
//!
//! The output keeps the user's attributes, visibility and signature untouched
//! and becomes
//!
//! ```text
//! #attrs #vis #sig {
//!     let __scanlock_guard = {
//!         let __scanlock_manager = <manager or global()>;
//!         let __scanlock_name = format!(<template>, &<arg>...);
//!         let __scanlock_user = <user or module_path!()::fn>;
//!         match acquire(..)[.await] { Ok(g) => g, Err(e) => return Err(From::from(e)) }
//!     };
//!     #original_block
//! }
//! ```
//!
//! The original block stays a plain block at the end of the function's own
//! body, not a closure: `return` and `?` keep returning from the function,
//! `self` and `impl Trait` arguments need no capturing, and the guard, a local
//! of the outer block, is dropped on every exit including unwinding. The
//! prologue sits in its own block so the borrows it takes to format the name
//! end before the body runs (a `&mut self` body stays legal).

use proc_macro2::{Literal, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::token::Brace;
use syn::{AttrStyle, FnArg, Ident, ItemFn, LitStr, Member, Pat, ReturnType, Signature, Type};

use crate::Errors;
use crate::args::{self, Args, MacroKind, WaitOpt};
use crate::template::{self, Accessor, Segment, Template};

/// The parameter `#[read_locked]`/`#[write_locked]`/`#[synchronized]` lock on
/// when no template is given.
const DEFAULT_PARAM: &str = "scan_id";

/// Entry point shared by the three attributes.
pub(crate) fn expand(kind: MacroKind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let (args, mut errors) = args::parse(kind, attr);
    let func = match parse_fn(kind, item.clone()) {
        Ok(func) => func,
        Err(e) => {
            errors.push(e);
            return fallback(item, errors.into_error());
        }
    };
    match generate(kind, &args, func, errors) {
        Ok(tokens) => tokens,
        Err(e) => fallback(item, e),
    }
}

/// On any error, the function is emitted unchanged beside the errors, so its
/// callers still type-check and only the real mistakes are reported (what
/// tokio-macros and thiserror do).
fn fallback(item: TokenStream, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote!(#item #errors)
}

fn parse_fn(kind: MacroKind, item: TokenStream) -> syn::Result<ItemFn> {
    syn::parse2::<ItemFn>(item.clone()).map_err(|e| {
        let msg = match syn::parse2::<syn::TraitItemFn>(item.clone()) {
            Ok(f) if f.default.is_none() => format!(
                "{} needs a function body to lock around; put it on the function in \
                 the `impl`, not on the trait's declaration",
                kind.attr()
            ),
            Ok(_) => return e,
            Err(_) => format!("{} can only be applied to a `fn`", kind.attr()),
        };
        syn::Error::new_spanned(item, msg)
    })
}

/// A name the template may use: a binding from the parameter list.
struct Param {
    name: String,
    /// `None` for the receiver, whose token is `self`, not an identifier.
    ident: Option<Ident>,
}

fn params(sig: &Signature) -> Vec<Param> {
    let mut out = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(_) => out.push(Param {
                name: "self".to_owned(),
                ident: None,
            }),
            FnArg::Typed(pt) => bindings(&pt.pat, &mut out),
        }
    }
    out
}

/// Every variable a parameter pattern binds: `scan`, or `id` and `name` in
/// `Scan { id, name, .. }: Scan`.
fn bindings(pat: &Pat, out: &mut Vec<Param>) {
    match pat {
        Pat::Ident(p) => {
            out.push(Param {
                name: p.ident.unraw().to_string(),
                ident: Some(p.ident.clone()),
            });
            if let Some((_, sub)) = &p.subpat {
                bindings(sub, out);
            }
        }
        Pat::Tuple(p) => p.elems.iter().for_each(|p| bindings(p, out)),
        Pat::TupleStruct(p) => p.elems.iter().for_each(|p| bindings(p, out)),
        Pat::Slice(p) => p.elems.iter().for_each(|p| bindings(p, out)),
        Pat::Struct(p) => p.fields.iter().for_each(|f| bindings(&f.pat, out)),
        Pat::Reference(p) => bindings(&p.pat, out),
        Pat::Paren(p) => bindings(&p.pat, out),
        Pat::Type(p) => bindings(&p.pat, out),
        _ => {}
    }
}

/// A return type the lock error can be returned through: syntactically a path
/// whose last segment ends in `Result` (`Result`, `io::Result`,
/// `anyhow::Result`, `ScanResult`); whether `From<LockError>` holds is left
/// to the type checker, which points at the return type when it does not.
fn returns_result(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    let mut ty = &**ty;
    loop {
        match ty {
            Type::Paren(t) => ty = &t.elem,
            Type::Group(t) => ty = &t.elem,
            Type::Path(p) => {
                return p
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident.to_string().ends_with("Result"));
            }
            _ => return false,
        }
    }
}

/// `errors` holds what parsing the arguments found; generation adds its own
/// and only emits code when there are none.
fn generate(
    kind: MacroKind,
    args: &Args,
    func: ItemFn,
    mut errors: Errors,
) -> syn::Result<TokenStream> {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let params = params(&sig);
    let fn_name = sig.ident.unraw().to_string();
    // Every path into the runtime goes through `crate = ..` when given, so a
    // renamed dependency or a facade crate works.
    let private = match &args.krate {
        Some(krate) => quote!(#krate::__private),
        None => quote!(::scanlock::__private),
    };

    if let Some(c) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            c,
            format!("{} cannot lock in a `const fn`", kind.attr()),
        ));
    }

    let name = match &args.template {
        Some(lit) => template_name(lit, &fn_name, &params, &mut errors),
        None => default_name(kind, &sig, &params, &mut errors),
    };

    // `__scanlock_err` is the `LockError` in scope where this is spliced.
    let on_error = if args.on_error_panic {
        quote!(#private::lock_failed(__scanlock_err))
    } else if returns_result(&sig.output) {
        // Spanned on the error type: a missing `From<LockError>` is reported
        // there rather than on the whole attribute.
        let span = error_type_span(&sig.output);
        quote_spanned! {span=>
            return ::core::result::Result::Err(::core::convert::From::from(__scanlock_err))
        }
    } else if args.given.contains(&"on_error") {
        // `on_error` was written with a bad value, already reported; asking
        // for a `Result` on top would only repeat it.
        TokenStream::new()
    } else {
        let (span, shown) = match &sig.output {
            ReturnType::Type(_, ty) => (ty.span(), ty.to_token_stream().to_string()),
            ReturnType::Default => (sig.ident.span(), "()".to_owned()),
        };
        errors.push(syn::Error::new(
            span,
            format!(
                "{attr} reports a lock it cannot take as `Err`, so `{fn_name}` must \
                 return a `Result`, but it returns `{shown}`\n\
                 help: return a `Result<_, E>` where `E: From<scanlock::LockError>` \
                 (e.g. `std::io::Result<_>` or `anyhow::Result<_>`), \
                 or add `on_error = panic` to the attribute to panic instead",
                attr = kind.attr(),
            ),
        ));
        TokenStream::new()
    };

    errors.finish()?;
    // A missing name always came with an error, so this is unreachable; it is
    // an error rather than a panic all the same.
    let Some(name) = name else {
        return Err(syn::Error::new_spanned(
            &sig.ident,
            "could not build the lock name",
        ));
    };

    let manager = match &args.manager {
        // `&(expr)` with a typed binding accepts `self.locks`, `&self.locks`,
        // an `Arc<ScanLockManager>` or a `&'static ScanLockManager` alike,
        // by deref coercion, and never moves out of `expr`.
        Some(expr) => quote!(&(#expr)),
        None => quote! {
            match #private::global() {
                ::core::result::Result::Ok(__scanlock_manager) => __scanlock_manager,
                ::core::result::Result::Err(__scanlock_err) => #on_error,
            }
        },
    };
    let user = match &args.user {
        Some(expr) => quote!(&(#expr)),
        None => quote!(::core::concat!(::core::module_path!(), "::", #fn_name)),
    };
    let lock_type = match (kind, args.shared) {
        (MacroKind::ReadLocked, _) | (MacroKind::Synchronized, Some(_)) => {
            quote!(#private::LockType::Shared)
        }
        (MacroKind::WriteLocked, _) | (MacroKind::Synchronized, None) => {
            quote!(#private::LockType::Exclusive)
        }
    };
    let wait = match args.wait() {
        WaitOpt::Default => quote!(#private::Wait::Default),
        WaitOpt::NoWait => quote!(#private::Wait::NoWait),
        // Through a function spanned on the user's expression: a value that is
        // not a `Duration` is reported there, with scanlock's own message.
        WaitOpt::Timeout(d) => {
            let span = generated_at(d.span());
            let arg = quote_spanned!(span=> #private::timeout_arg(#d));
            quote!(#private::Wait::Timeout(#arg))
        }
    };
    let acquire = if sig.asyncness.is_some() {
        // The runtime's future is 'static and Send: it does not borrow the
        // manager, name or user, and waits without blocking the executor.
        quote! {
            #private::acquire_async(
                __scanlock_manager, &__scanlock_name, #lock_type, __scanlock_user, #wait,
            ).await
        }
    } else {
        quote! {
            #private::acquire(
                __scanlock_manager, &__scanlock_name, #lock_type, __scanlock_user, #wait,
            )
        }
    };

    // syn moves the body's inner attributes (`#![allow(..)]`) into `attrs`;
    // they go back to the start of the body, where they are legal and apply
    // to the whole function as written.
    let (inner_attrs, outer_attrs): (Vec<_>, Vec<_>) = attrs
        .into_iter()
        .partition(|a| matches!(a.style, AttrStyle::Inner(_)));
    // The user's block becomes the tail of the generated body. With its own
    // braces' spans, rustc's `unused_braces` would fire on every one-line
    // body (`{ Ok(()) }`), and `cargo fix` would then remove braces that the
    // expansion needs; braces that belong to the expansion are not linted.
    let mut block = block;
    block.brace_token = Brace(generated_at(block.brace_token.span.join()));

    Ok(quote! {
        #(#outer_attrs)*
        #vis #sig {
            #(#inner_attrs)*
            let __scanlock_guard = {
                let __scanlock_manager: &#private::ScanLockManager = #manager;
                let __scanlock_name: ::std::string::String = #name;
                let __scanlock_user: &::core::primitive::str = #user;
                match #acquire {
                    ::core::result::Result::Ok(__scanlock_guard) => __scanlock_guard,
                    ::core::result::Result::Err(__scanlock_err) => #on_error,
                }
            };
            #block
        }
    })
}

/// Where to report that the error type lacks `From<LockError>`: the `E` of
/// `Result<T, E>`, else (`io::Result<T>`, an alias) the return type.
fn error_type_span(output: &ReturnType) -> proc_macro2::Span {
    let ReturnType::Type(_, ty) = output else {
        return proc_macro2::Span::call_site();
    };
    if let Type::Path(p) = &**ty
        && let Some(last) = p.path.segments.last()
        && let syn::PathArguments::AngleBracketed(generics) = &last.arguments
        && generics.args.len() == 2
        && let Some(syn::GenericArgument::Type(e)) = generics.args.last()
    {
        return generated_at(e.span());
    }
    generated_at(ty.span())
}

/// A span that reports at the user's token but belongs to the macro's
/// expansion: compiler errors point at the token, while lints that skip
/// macro-generated code (clippy's `useless_conversion` on `From::from` for a
/// `Result<_, LockError>`) do not fire on the user's function.
fn generated_at(user: proc_macro2::Span) -> proc_macro2::Span {
    proc_macro2::Span::call_site().located_at(user)
}

/// `format!` over references to the placeholders' values, spanned on the
/// template so a missing `Display` or field is reported there.
fn template_name(
    lit: &LitStr,
    fn_name: &str,
    params: &[Param],
    errors: &mut Errors,
) -> Option<TokenStream> {
    // Diagnostics of our own sit on the literal itself; generated code only
    // reports there (see `generated_at`).
    let span = generated_at(lit.span());
    let template_error = |e: template::TemplateError| syn::Error::new(lit.span(), e.to_string());
    let template = match Template::parse(&lit.value()) {
        Ok(t) => t,
        Err(es) => {
            es.into_iter().for_each(|e| errors.push(template_error(e)));
            return None;
        }
    };
    let names: Vec<String> = params.iter().map(|p| p.name.clone()).collect();
    let problems = template.check(&names);
    if !problems.is_empty() {
        problems
            .into_iter()
            .for_each(|e| errors.push(template_error(e)));
        return None;
    }

    let mut format = String::new();
    let mut values = Vec::new();
    let mut ok = true;
    for segment in &template.segments {
        match segment {
            Segment::Literal(text) => push_escaped(&mut format, text),
            Segment::Placeholder(p) if p.root == template::F_NAME => {
                push_escaped(&mut format, fn_name)
            }
            Segment::Placeholder(p) => {
                let param = params
                    .iter()
                    .find(|param| param.name == p.root)
                    .expect("checked above");
                let mut value = match &param.ident {
                    Some(ident) => {
                        let mut ident = ident.clone();
                        ident.set_span(span);
                        ident.into_token_stream()
                    }
                    None => quote_spanned!(span=> self),
                };
                for accessor in &p.accessors {
                    match accessor {
                        Accessor::Field(field) => match syn::parse_str::<Member>(field) {
                            Ok(mut member) => {
                                match &mut member {
                                    Member::Named(ident) => ident.set_span(span),
                                    Member::Unnamed(index) => index.span = span,
                                }
                                value = quote_spanned!(span=> #value.#member);
                            }
                            Err(_) => {
                                ok = false;
                                errors.push(syn::Error::new(
                                    lit.span(),
                                    format!(
                                        "`{field}` in `{{{p}}}` is not a field name Rust accepts \
                                         (a keyword?)"
                                    ),
                                ));
                            }
                        },
                        Accessor::Index(i) => {
                            let mut i = Literal::usize_unsuffixed(*i);
                            i.set_span(span);
                            value = quote_spanned!(span=> #value[#i]);
                        }
                        Accessor::Key(key) => {
                            let key = LitStr::new(key, span);
                            value = quote_spanned!(span=> #value[#key]);
                        }
                    }
                }
                format.push_str("{}");
                values.push(quote_spanned!(span=> &#value));
            }
        }
    }
    let format = LitStr::new(&format, span);
    ok.then(|| quote_spanned!(span=> ::std::format!(#format #(, #values)*)))
}

fn push_escaped(format: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '{' => format.push_str("{{"),
            '}' => format.push_str("}}"),
            c => format.push(c),
        }
    }
}

/// Without a template, the lock is named by the `scan_id` argument's value,
/// the same lock `manager.acquire_lock(scan_id, ..)` takes.
fn default_name(
    kind: MacroKind,
    sig: &Signature,
    params: &[Param],
    errors: &mut Errors,
) -> Option<TokenStream> {
    match params.iter().find(|p| p.name == DEFAULT_PARAM) {
        Some(Param {
            ident: Some(ident), ..
        }) => Some(quote!(::std::format!("{}", &#ident))),
        _ => {
            let available: Vec<String> = params.iter().map(|p| format!("`{}`", p.name)).collect();
            let available = if available.is_empty() {
                "it has no parameters".to_owned()
            } else {
                format!("its parameters are {}", available.join(", "))
            };
            let example = params
                .iter()
                .find(|p| p.ident.is_some())
                .map_or(template::F_NAME, |p| p.name.as_str());
            errors.push(syn::Error::new_spanned(
                &sig.ident,
                format!(
                    "{attr} without a lock name locks the value of the parameter `{DEFAULT_PARAM}`, \
                     but `{fn_name}` has no parameter `{DEFAULT_PARAM}` ({available})\n\
                     help: name the lock with a template, e.g. {attr_open}(\"{{{example}}}\")]",
                    attr = kind.attr(),
                    attr_open = kind.attr().trim_end_matches(']'),
                    fn_name = sig.ident.unraw(),
                ),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(kind: MacroKind, attr: &str, item: &str) -> String {
        expand(kind, attr.parse().unwrap(), item.parse().unwrap()).to_string()
    }

    #[test]
    fn manila_template_formats_references() {
        let out = expand_str(
            MacroKind::Synchronized,
            r#""lock-{f_name}-{foo.val}-{bar[val]}-{v[0]}-{{x}}""#,
            "fn func(foo: &Foo, bar: &HashMap<String, i32>, v: Vec<u8>) -> io::Result<()> { Ok(()) }",
        );
        assert!(
            out.contains(
                r#":: std :: format ! ("lock-func-{}-{}-{}-{{x}}" , & foo . val , & bar ["val"] , & v [0])"#
            ),
            "{out}"
        );
        assert!(out.contains(":: scanlock :: __private :: LockType :: Exclusive"));
        assert!(out.contains(":: scanlock :: __private :: Wait :: Default"));
        assert!(out.contains(":: scanlock :: __private :: global ()"));
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn default_name_is_scan_id() {
        let out = expand_str(
            MacroKind::ReadLocked,
            "",
            "pub(crate) async fn read(&self, scan_id: &str) -> Result<(), E> { Ok(()) }",
        );
        assert!(
            out.contains(r#":: std :: format ! ("{}" , & scan_id)"#),
            "{out}"
        );
        assert!(out.contains("acquire_async"));
        assert!(out.contains(". await"));
        assert!(out.contains("LockType :: Shared"));
        assert!(out.starts_with("pub (crate) async fn read"), "{out}");
    }

    #[test]
    fn options_map_to_wait_and_user() {
        let out = expand_str(
            MacroKind::Synchronized,
            r#""{self.id}", shared, timeout = d, user = "ingest", manager = self.locks, on_error = panic"#,
            "fn f(&mut self) { }",
        );
        assert!(
            out.contains("Wait :: Timeout (:: scanlock :: __private :: timeout_arg (d))"),
            "{out}"
        );
        assert!(out.contains(r#"& ("ingest")"#));
        assert!(out.contains("& (self . locks)"));
        assert!(out.contains("lock_failed"));
        assert!(out.contains("LockType :: Shared"));
        assert!(!out.contains("global"));
    }

    #[test]
    fn crate_path_replaces_scanlock() {
        let out = expand_str(
            MacroKind::Synchronized,
            r#""{scan_id}", crate = ::facade::locks, timeout = d"#,
            "async fn f(scan_id: &str) -> Result<(), E> { Ok(()) }",
        );
        assert!(!out.contains(":: scanlock"), "{out}");
        assert!(out.contains(":: facade :: locks :: __private :: acquire_async"));
        assert!(out.contains(":: facade :: locks :: __private :: timeout_arg (d)"));
    }

    #[test]
    fn inner_attributes_stay_in_the_body() {
        let out = expand_str(
            MacroKind::ReadLocked,
            "",
            "#[inline] fn f(scan_id: &str) -> Result<(), E> { #![allow(unused)] Ok(()) }",
        );
        assert!(
            out.starts_with("# [inline] fn f (scan_id : & str) -> Result < () , E > { # ! [allow (unused)] let __scanlock_guard"),
            "{out}"
        );
        assert!(out.ends_with("; { Ok (()) } }"), "{out}");
    }

    #[test]
    fn errors_keep_the_function() {
        let out = expand_str(
            MacroKind::WriteLocked,
            r#""{nope}-{", bogus = 1"#,
            "fn f(scan_id: &str) -> u32 { 1 }",
        );
        assert!(
            out.starts_with("fn f (scan_id : & str) -> u32 { 1 }"),
            "{out}"
        );
        assert!(out.contains("compile_error"));
        assert!(out.contains("unknown option `bogus`"));
    }

    #[test]
    fn collects_template_and_signature_errors() {
        let out = expand_str(
            MacroKind::Synchronized,
            r#""{a}-{b}""#,
            "const fn f(x: u8) -> u8 { x }",
        );
        for expected in [
            "unknown name `a`",
            "unknown name `b`",
            "const fn",
            "returns `u8`",
        ] {
            assert!(out.contains(expected), "{expected}: {out}");
        }
    }

    #[test]
    fn result_detection() {
        for (ty, ok) in [
            ("Result<(), E>", true),
            ("io::Result<()>", true),
            ("::anyhow::Result<()>", true),
            ("(ScanResult)", true),
            ("()", false),
            ("Option<()>", false),
            ("impl Future<Output = Result<(), E>>", false),
        ] {
            let sig: Signature = syn::parse_str(&format!("fn f() -> {ty}")).unwrap();
            assert_eq!(returns_result(&sig.output), ok, "{ty}");
        }
    }

    #[test]
    fn pattern_bindings() {
        let sig: Signature = syn::parse_str(
            "fn f(&self, Scan { id, name: n, .. }: Scan, (a, mut b): (u8, u8), r#type: u8)",
        )
        .unwrap();
        let names: Vec<_> = params(&sig).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["self", "id", "n", "a", "b", "type"]);
    }

    #[test]
    fn not_a_function() {
        let out = expand_str(MacroKind::Synchronized, "", "struct S;");
        assert!(out.contains("can only be applied to a `fn`"), "{out}");
        let out = expand_str(MacroKind::Synchronized, "", "fn f(&self) -> Result<(), E>;");
        assert!(out.contains("needs a function body"), "{out}");
    }
}
