//! The attribute's arguments: an optional lock name template, then options.
//!
//! Every option is one row of [`OPTIONS`]: its keyword, the syntax shown in
//! diagnostics, which macros accept it and how its value is parsed. The parse
//! loop, the "unknown option" message and the per-macro check all read that
//! table, so they cannot drift apart (tracing-attributes' copy-pasted checks
//! did).

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{Lookahead1, ParseStream, Parser};
use syn::{Expr, ExprLit, Ident, Lit, LitBool, LitStr, Path, Token};

use crate::Errors;

mod kw {
    syn::custom_keyword!(timeout);
    syn::custom_keyword!(blocking);
    syn::custom_keyword!(user);
    syn::custom_keyword!(manager);
    syn::custom_keyword!(shared);
    syn::custom_keyword!(on_error);
    syn::custom_keyword!(panic);
}

/// Which of the three attributes is being expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MacroKind {
    Synchronized,
    ReadLocked,
    WriteLocked,
}

impl MacroKind {
    /// How users write it, for messages.
    pub(crate) fn attr(self) -> &'static str {
        match self {
            MacroKind::Synchronized => "#[synchronized]",
            MacroKind::ReadLocked => "#[read_locked]",
            MacroKind::WriteLocked => "#[write_locked]",
        }
    }
}

/// One accepted option.
pub(crate) struct OptionSpec {
    pub(crate) name: &'static str,
    /// As listed in diagnostics.
    pub(crate) syntax: &'static str,
    /// `shared` only makes sense where the lock type is not already fixed.
    pub(crate) synchronized_only: bool,
    peek: fn(&Lookahead1) -> bool,
    /// Parses the whole option (keyword included) into `Args`.
    parse: fn(ParseStream, &mut Args) -> syn::Result<()>,
}

impl OptionSpec {
    fn accepted_by(&self, kind: MacroKind) -> bool {
        !self.synchronized_only || kind == MacroKind::Synchronized
    }
}

/// Every option, in the order diagnostics list them.
pub(crate) const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "timeout",
        syntax: "timeout = <Duration>",
        synchronized_only: false,
        peek: |l| l.peek(kw::timeout),
        parse: |input, args| {
            input.parse::<kw::timeout>()?;
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            // A bare number has no unit: say so here rather than leave a type
            // error for the expansion (other expressions are checked there,
            // on the user's tokens, by `__private::timeout_arg`).
            if let Expr::Lit(ExprLit {
                lit: Lit::Int(_) | Lit::Float(_),
                ..
            }) = &value
            {
                return Err(syn::Error::new_spanned(
                    value,
                    "`timeout` takes a `Duration`, not a number: write e.g. \
                     `timeout = std::time::Duration::from_secs(10)`",
                ));
            }
            args.timeout = Some(value);
            Ok(())
        },
    },
    OptionSpec {
        name: "blocking",
        syntax: "blocking = false",
        synchronized_only: false,
        peek: |l| l.peek(kw::blocking),
        parse: |input, args| {
            input.parse::<kw::blocking>()?;
            input.parse::<Token![=]>()?;
            // A literal, so `timeout` + `blocking = false` can be rejected at
            // compile time.
            if !input.peek(LitBool) {
                let value: Expr = input.parse()?;
                return Err(syn::Error::new_spanned(
                    value,
                    "`blocking` takes a literal `true` or `false`",
                ));
            }
            args.blocking = Some(input.parse()?);
            Ok(())
        },
    },
    OptionSpec {
        name: "user",
        syntax: "user = <&str>",
        synchronized_only: false,
        peek: |l| l.peek(kw::user),
        parse: |input, args| {
            input.parse::<kw::user>()?;
            input.parse::<Token![=]>()?;
            args.user = Some(input.parse()?);
            Ok(())
        },
    },
    OptionSpec {
        name: "manager",
        syntax: "manager = <&ScanLockManager>",
        synchronized_only: false,
        peek: |l| l.peek(kw::manager),
        parse: |input, args| {
            input.parse::<kw::manager>()?;
            input.parse::<Token![=]>()?;
            args.manager = Some(input.parse()?);
            Ok(())
        },
    },
    OptionSpec {
        name: "shared",
        syntax: "shared",
        synchronized_only: true,
        peek: |l| l.peek(kw::shared),
        parse: |input, args| {
            args.shared = Some(input.parse::<kw::shared>()?.span);
            Ok(())
        },
    },
    OptionSpec {
        name: "on_error",
        syntax: "on_error = panic",
        synchronized_only: false,
        peek: |l| l.peek(kw::on_error),
        parse: |input, args| {
            input.parse::<kw::on_error>()?;
            input.parse::<Token![=]>()?;
            if !input.peek(kw::panic) {
                let value: Expr = input.parse()?;
                return Err(syn::Error::new_spanned(
                    value,
                    "`on_error` takes `panic`; without `on_error`, a lock failure is \
                     returned as the function's `Err`",
                ));
            }
            input.parse::<kw::panic>()?;
            args.on_error_panic = true;
            Ok(())
        },
    },
    OptionSpec {
        name: "crate",
        syntax: "crate = <path>",
        synchronized_only: false,
        peek: |l| l.peek(Token![crate]),
        parse: |input, args| {
            input.parse::<Token![crate]>()?;
            input.parse::<Token![=]>()?;
            args.krate = Some(input.call(Path::parse_mod_style)?);
            Ok(())
        },
    },
];

/// The parsed attribute, as [`crate::expand`] reads it.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) template: Option<LitStr>,
    pub(crate) timeout: Option<Expr>,
    pub(crate) blocking: Option<LitBool>,
    pub(crate) user: Option<Expr>,
    pub(crate) manager: Option<Expr>,
    pub(crate) shared: Option<Span>,
    pub(crate) on_error_panic: bool,
    /// `crate = path`: where the `scanlock` crate is, for a renamed
    /// dependency or a facade that re-exports it (default `::scanlock`).
    pub(crate) krate: Option<Path>,
    /// Every option written, even one whose value was rejected: checks that
    /// depend on an option stay quiet when it was only misspelt in value.
    pub(crate) given: Vec<&'static str>,
}

/// How long to wait; maps one to one onto `scanlock::Wait`.
pub(crate) enum WaitOpt<'a> {
    /// The manager's default timeout.
    Default,
    NoWait,
    Timeout(&'a Expr),
}

impl Args {
    pub(crate) fn wait(&self) -> WaitOpt<'_> {
        match (&self.timeout, &self.blocking) {
            (_, Some(b)) if !b.value => WaitOpt::NoWait,
            (Some(t), _) => WaitOpt::Timeout(t),
            (None, _) => WaitOpt::Default,
        }
    }
}

/// Parses the attribute's tokens, reporting every mistake it can find.
///
/// The arguments are returned even with errors, as far as they were read, so
/// the template and the signature can still be checked and every mistake
/// shows in one compile.
pub(crate) fn parse(kind: MacroKind, tokens: TokenStream) -> (Args, Errors) {
    let mut args = Args::default();
    let mut errors = Errors::default();
    let parser = |input: ParseStream| parse_args_into(kind, input, &mut args, &mut errors);
    if let Err(e) = parser.parse2(tokens) {
        errors.push(e);
    }
    (args, errors)
}

fn valid_options(kind: MacroKind) -> String {
    OPTIONS
        .iter()
        .filter(|o| o.accepted_by(kind))
        .map(|o| format!("`{}`", o.syntax))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_args_into(
    kind: MacroKind,
    input: ParseStream,
    args: &mut Args,
    errors: &mut Errors,
) -> syn::Result<()> {
    let mut seen: Vec<(&'static str, Span)> = Vec::new();

    if input.peek(LitStr) {
        args.template = Some(input.parse()?);
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
    }

    while !input.is_empty() {
        let lookahead = input.lookahead1();
        let start = input.span();
        if let Some(option) = OPTIONS.iter().find(|o| (o.peek)(&lookahead)) {
            if seen.iter().any(|(name, _)| *name == option.name) {
                errors.push(syn::Error::new(
                    start,
                    format!("`{}` is given more than once; keep one", option.name),
                ));
            } else {
                seen.push((option.name, start));
            }
            args.given.push(option.name);
            if let Err(e) = (option.parse)(input, args) {
                errors.push(e);
                skip_to_comma(input)?;
            }
        } else if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            errors.push(syn::Error::new_spanned(
                lit,
                if args.template.is_some() {
                    "only one lock name template is allowed"
                } else {
                    "the lock name template must come first, before the options"
                },
            ));
        } else if input.peek(Ident::peek_any) {
            let ident = input.call(Ident::parse_any)?;
            errors.push(syn::Error::new_spanned(
                &ident,
                format!(
                    "unknown option `{ident}` for {}; valid options: {}",
                    kind.attr(),
                    valid_options(kind)
                ),
            ));
            skip_to_comma(input)?;
        } else {
            // Lists the string literal and every keyword peeked above.
            return Err(lookahead.error());
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }

    for (name, span) in &seen {
        if let Some(o) = OPTIONS.iter().find(|o| o.name == *name)
            && !o.accepted_by(kind)
        {
            let why = match kind {
                MacroKind::ReadLocked => "#[read_locked] always takes a shared lock",
                _ => {
                    "#[write_locked] always takes an exclusive lock; use #[read_locked] for a shared one"
                }
            };
            errors.push(syn::Error::new(
                *span,
                format!("`{name}` is only accepted by #[synchronized]: {why}"),
            ));
        }
    }
    if let (Some(timeout), Some(blocking)) = (&args.timeout, &args.blocking)
        && !blocking.value
    {
        let mut e = syn::Error::new_spanned(
            blocking,
            "`blocking = false` makes one attempt and never waits, so `timeout` has no \
             meaning with it; remove one of the two",
        );
        e.combine(syn::Error::new_spanned(timeout, "`timeout` given here"));
        errors.push(e);
    }
    Ok(())
}

/// After a bad option, resume at the next one so later mistakes are reported too.
fn skip_to_comma(input: ParseStream) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parse_str(kind: MacroKind, src: &str) -> syn::Result<Args> {
        let (args, errors) = parse(kind, src.parse().unwrap());
        errors.finish().map(|()| args)
    }

    fn err(kind: MacroKind, src: &str) -> Vec<String> {
        match parse_str(kind, src) {
            Ok(_) => panic!("{src:?} should be rejected"),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn every_table_row_parses() {
        for o in OPTIONS {
            let src = o
                .syntax
                .replace("<Duration>", "::std::time::Duration::from_secs(1)");
            let src = src.replace("<&str>", "\"me\"");
            let src = src.replace("<&ScanLockManager>", "&self.locks");
            let src = src.replace("<path>", "::my_facade::locks");
            let args =
                parse_str(MacroKind::Synchronized, &src).unwrap_or_else(|e| panic!("{src}: {e}"));
            let set = match o.name {
                "timeout" => args.timeout.is_some(),
                "blocking" => args.blocking.is_some(),
                "user" => args.user.is_some(),
                "manager" => args.manager.is_some(),
                "shared" => args.shared.is_some(),
                "on_error" => args.on_error_panic,
                "crate" => args.krate.is_some(),
                other => panic!("option `{other}` is not covered by this test"),
            };
            assert!(set, "{src} did not set its field");
        }
    }

    #[test]
    fn template_and_options() {
        let a = parse_str(
            MacroKind::Synchronized,
            r#""{f_name}-{scan_id}", timeout = Duration::from_secs(10), user = "ingest", shared,"#,
        )
        .unwrap();
        assert_eq!(a.template.unwrap().value(), "{f_name}-{scan_id}");
        assert!(a.user.is_some());
        assert!(a.shared.is_some());
        assert!(matches!(
            parse_str(MacroKind::ReadLocked, "").unwrap().wait(),
            WaitOpt::Default
        ));
        assert!(matches!(
            parse_str(MacroKind::ReadLocked, "blocking = false")
                .unwrap()
                .wait(),
            WaitOpt::NoWait
        ));
        assert!(matches!(
            parse_str(MacroKind::ReadLocked, "blocking = true, timeout = d")
                .unwrap()
                .wait(),
            WaitOpt::Timeout(_)
        ));
    }

    #[test]
    fn unknown_option_lists_valid_ones() {
        let e = err(MacroKind::ReadLocked, "tiemout = 3");
        assert_eq!(
            e,
            [
                "unknown option `tiemout` for #[read_locked]; valid options: \
              `timeout = <Duration>`, `blocking = false`, `user = <&str>`, \
              `manager = <&ScanLockManager>`, `on_error = panic`, `crate = <path>`"
            ]
        );
        assert!(err(MacroKind::Synchronized, "x")[0].contains("`shared`"));
    }

    #[test]
    fn collects_several_errors() {
        let e = err(
            MacroKind::ReadLocked,
            "foo = 1, timeout = a, timeout = b, shared, bar(1, 2), blocking = maybe",
        );
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(e[0].starts_with("unknown option `foo`"));
        assert!(e[1].contains("`timeout` is given more than once"));
        assert!(e[2].starts_with("unknown option `bar`"));
        assert!(e[3].contains("literal `true` or `false`"));
        assert!(e[4].contains("`shared` is only accepted by #[synchronized]"));
    }

    #[test]
    fn timeout_with_no_wait() {
        let e = err(MacroKind::WriteLocked, "timeout = d, blocking = false");
        assert!(e[0].contains("remove one of the two"), "{e:?}");
    }

    #[test]
    fn timeout_number() {
        for src in ["timeout = 10", "timeout = 1.5", "timeout = 10u64"] {
            let e = err(MacroKind::Synchronized, src);
            assert!(
                e[0].starts_with("`timeout` takes a `Duration`"),
                "{src}: {e:?}"
            );
        }
        assert!(parse_str(MacroKind::Synchronized, "timeout = WAIT").is_ok());
    }

    #[test]
    fn crate_path() {
        let krate = parse_str(MacroKind::ReadLocked, "crate = locks")
            .unwrap()
            .krate;
        assert_eq!(quote!(#krate).to_string(), "locks");
        let a = parse_str(MacroKind::ReadLocked, r#""x", crate = ::facade::locks"#).unwrap();
        let krate = a.krate.unwrap();
        assert_eq!(quote!(#krate).to_string(), ":: facade :: locks");
        assert!(err(MacroKind::Synchronized, "crate = 1")[0].starts_with("expected"));
    }

    #[test]
    fn misplaced_template() {
        let e = err(MacroKind::Synchronized, r#"timeout = d, "x""#);
        assert!(e[0].contains("must come first"));
        let e = err(MacroKind::Synchronized, r#""x", "y""#);
        assert!(e[0].contains("only one"));
    }

    #[test]
    fn bad_values() {
        assert!(err(MacroKind::Synchronized, "on_error = ignore")[0].contains("takes `panic`"));
        assert!(err(MacroKind::Synchronized, "timeout")[0].contains("expected `=`"));
        let e = err(MacroKind::Synchronized, "42");
        assert!(e[0].starts_with("expected one of"), "{e:?}");
        // Never panics on token soup.
        for src in [
            quote!(,),
            quote!(= =),
            quote!("a",,),
            quote!(timeout = ),
            quote!(r#timeout = 1),
            quote!(shared = 1),
        ] {
            let (_, errors) = parse(MacroKind::Synchronized, src);
            assert!(errors.finish().is_err());
        }
    }
}
