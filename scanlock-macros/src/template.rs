//! Lock name templates: `"{f_name}-{scan.id}-{snap[name]}"`.
//!
//! The grammar is the field-name part of Python's `str.format` (what manila's
//! `@synchronized` accepted), minus what has no meaning here:
//!
//! ```text
//! template    := (literal | "{{" | "}}" | "{" placeholder "}")*
//! placeholder := root ("." field | "[" index "]")*
//! root        := identifier            (`f_name`, a parameter, or `self`)
//! field       := identifier | digits   (`scan.id`, `pair.0`)
//! index       := digits                (`v[0]`: integer index)
//!              | any text without "]"  (`snap[name]`: the string key "name")
//! ```
//!
//! Everything here is a pure function over `&str` so it can be unit-tested
//! outside a compiler and never panics: every malformed input is a
//! [`TemplateError`] carrying the byte range it is about.

use std::fmt;
use std::ops::Range;

/// The placeholder that stands for the decorated function's name.
pub(crate) const F_NAME: &str = "f_name";

/// A parsed template: literal text and placeholders, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pub(crate) segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Text copied as is; `{{`/`}}` are already unescaped.
    Literal(String),
    Placeholder(Placeholder),
}

/// `{root.field[index]...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placeholder {
    pub(crate) root: String,
    pub(crate) accessors: Vec<Accessor>,
    /// Byte range of the text between the braces, for diagnostics.
    pub(crate) range: Range<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Accessor {
    /// `.name` or `.0`.
    Field(String),
    /// `[3]`: an integer index.
    Index(usize),
    /// `[name]`: a string key, Python's reading of a non-numeric index.
    Key(String),
}

/// What went wrong, and where (a byte range into the template's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateError {
    pub(crate) kind: ErrorKind,
    pub(crate) range: Range<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// `{` with no matching `}`.
    Unclosed,
    /// A `}` that closes nothing.
    UnmatchedClose,
    /// `{}`.
    Empty,
    /// `{0}`: Python's positional arguments have no meaning for a fn attribute.
    Positional(String),
    /// `{a:>8}` or `{a!r}`.
    FormatSpec(String),
    /// Anything else that is not `root(.field|[index])*`; the string says what.
    Malformed { placeholder: String, reason: String },
    /// A root that is neither `f_name`, `self` nor a parameter.
    UnknownName {
        name: String,
        available: Vec<String>,
    },
    /// `{f_name}` when a parameter is also called `f_name`.
    AmbiguousFName,
    /// `{f_name.x}`: the function's name is a plain string.
    FNameAccessor,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Unclosed => f.write_str(
                "unclosed `{` in lock name template; close the placeholder with `}`, \
                 or write `{{` for a literal brace",
            ),
            ErrorKind::UnmatchedClose => {
                f.write_str("unmatched `}` in lock name template; write `}}` for a literal brace")
            }
            ErrorKind::Empty => f.write_str(
                "empty placeholder `{}` in lock name template; name what to insert, \
                 e.g. `{f_name}` or a parameter such as `{scan_id}`",
            ),
            ErrorKind::Positional(p) => write!(
                f,
                "positional placeholder `{{{p}}}` in lock name template; \
                 name a parameter instead, e.g. `{{scan_id}}`"
            ),
            ErrorKind::FormatSpec(p) => write!(
                f,
                "format specs and conversions are not supported in lock name templates: \
                 `{{{p}}}`; write `{{name}}`, `{{name.field}}` or `{{name[key]}}`"
            ),
            ErrorKind::Malformed {
                placeholder,
                reason,
            } => write!(
                f,
                "malformed placeholder `{{{placeholder}}}` in lock name template: {reason}"
            ),
            ErrorKind::UnknownName { name, available } => {
                write!(
                    f,
                    "unknown name `{name}` in lock name template; available: "
                )?;
                for (i, a) in available.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "`{a}`")?;
                }
                Ok(())
            }
            ErrorKind::AmbiguousFName => f.write_str(
                "`{f_name}` is ambiguous: it always means the function's name, \
                 but a parameter is also called `f_name`; rename the parameter",
            ),
            ErrorKind::FNameAccessor => f.write_str(
                "`{f_name}` is the function's name and has no fields or indices; \
                 write `{f_name}` alone",
            ),
        }
    }
}

impl Template {
    /// Parses `src`, returning every error found (it keeps going after a bad
    /// placeholder so one compile shows all of them).
    pub(crate) fn parse(src: &str) -> Result<Template, Vec<TemplateError>> {
        let mut segments = Vec::new();
        let mut errors = Vec::new();
        let mut literal = String::new();
        let mut chars = src.char_indices().peekable();

        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => errors.push(TemplateError {
                    kind: ErrorKind::UnmatchedClose,
                    range: i..i + 1,
                }),
                '{' => {
                    let start = i + 1;
                    // Python ends a field at the first `}`; a `{` inside one is
                    // never meaningful, so it is reported rather than nested.
                    let end = src[start..].find('}').map(|off| start + off);
                    let Some(end) = end else {
                        errors.push(TemplateError {
                            kind: ErrorKind::Unclosed,
                            range: i..src.len(),
                        });
                        break;
                    };
                    while chars.peek().is_some_and(|&(j, _)| j <= end) {
                        chars.next();
                    }
                    match parse_placeholder(&src[start..end], start) {
                        Ok(p) => {
                            if !literal.is_empty() {
                                segments.push(Segment::Literal(std::mem::take(&mut literal)));
                            }
                            segments.push(Segment::Placeholder(p));
                        }
                        Err(e) => errors.push(e),
                    }
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        if errors.is_empty() {
            Ok(Template { segments })
        } else {
            Err(errors)
        }
    }

    /// The placeholders, in order.
    pub(crate) fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Placeholder(p) => Some(p),
            Segment::Literal(_) => None,
        })
    }

    /// Checks every placeholder's root against the names a function offers.
    ///
    /// `params` are the bindings of the function's parameters (`self` included
    /// when it has a receiver); `f_name` is always available.
    pub(crate) fn check(&self, params: &[String]) -> Vec<TemplateError> {
        let mut errors = Vec::new();
        for p in self.placeholders() {
            if p.root == F_NAME {
                if !p.accessors.is_empty() {
                    errors.push(TemplateError {
                        kind: ErrorKind::FNameAccessor,
                        range: p.range.clone(),
                    });
                } else if params.iter().any(|n| n == F_NAME) {
                    errors.push(TemplateError {
                        kind: ErrorKind::AmbiguousFName,
                        range: p.range.clone(),
                    });
                }
            } else if !params.contains(&p.root) {
                let available = std::iter::once(F_NAME.to_owned())
                    .chain(params.iter().cloned())
                    .collect();
                errors.push(TemplateError {
                    kind: ErrorKind::UnknownName {
                        name: p.root.clone(),
                        available,
                    },
                    range: p.range.clone(),
                });
            }
        }
        errors
    }
}

/// Renders back to template syntax; `Template::parse` of the result gives
/// back an equal template (ranges aside).
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.segments {
            match s {
                Segment::Literal(text) => {
                    for c in text.chars() {
                        match c {
                            '{' => f.write_str("{{")?,
                            '}' => f.write_str("}}")?,
                            c => fmt::Write::write_char(f, c)?,
                        }
                    }
                }
                Segment::Placeholder(p) => write!(f, "{{{p}}}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.root)?;
        for a in &self.accessors {
            match a {
                Accessor::Field(name) => write!(f, ".{name}")?,
                Accessor::Index(i) => write!(f, "[{i}]")?,
                Accessor::Key(k) => write!(f, "[{k}]")?,
            }
        }
        Ok(())
    }
}

/// Parses the text between `{` and `}`; `offset` is its byte position in the
/// whole template.
fn parse_placeholder(text: &str, offset: usize) -> Result<Placeholder, TemplateError> {
    let range = offset..offset + text.len();
    let malformed = |reason: &str| TemplateError {
        kind: ErrorKind::Malformed {
            placeholder: text.to_owned(),
            reason: reason.to_owned(),
        },
        range: range.clone(),
    };

    if text.is_empty() {
        return Err(TemplateError {
            kind: ErrorKind::Empty,
            range,
        });
    }
    if text.contains('{') {
        return Err(malformed(
            "`{` inside a placeholder; write `{{` outside placeholders for a literal brace",
        ));
    }
    // A `:` or `!` inside `[...]` is part of a key, so only look outside brackets.
    if has_outside_brackets(text, &[':', '!']) {
        return Err(TemplateError {
            kind: ErrorKind::FormatSpec(text.to_owned()),
            range,
        });
    }

    let root_len = text.find(['.', '[']).unwrap_or(text.len());
    let root = &text[..root_len];
    if root.is_empty() {
        return Err(malformed("it must start with a name, e.g. `{scan.id}`"));
    }
    if root.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TemplateError {
            kind: ErrorKind::Positional(text.to_owned()),
            range,
        });
    }
    if !is_identifier(root) {
        return Err(malformed(&format!(
            "`{root}` is not a parameter name (placeholders hold no spaces or expressions)"
        )));
    }

    let mut accessors = Vec::new();
    let mut rest = &text[root_len..];
    while !rest.is_empty() {
        if let Some(after_dot) = rest.strip_prefix('.') {
            let len = after_dot.find(['.', '[']).unwrap_or(after_dot.len());
            let field = &after_dot[..len];
            if field.is_empty() {
                return Err(malformed("a field name must follow `.`"));
            }
            let is_tuple_index =
                field.bytes().all(|b| b.is_ascii_digit()) && field.parse::<usize>().is_ok();
            if !is_tuple_index && !is_identifier(field) {
                return Err(malformed(&format!("`{field}` is not a field name")));
            }
            accessors.push(Accessor::Field(field.to_owned()));
            rest = &after_dot[len..];
        } else if let Some(after_open) = rest.strip_prefix('[') {
            let Some(len) = after_open.find(']') else {
                return Err(malformed("`[` without a matching `]`"));
            };
            let index = &after_open[..len];
            if index.is_empty() {
                return Err(malformed("empty index `[]`; write `[0]` or `[key]`"));
            }
            if index.contains('[') {
                return Err(malformed("nested `[` in an index"));
            }
            if index.bytes().all(|b| b.is_ascii_digit()) {
                match index.parse::<usize>() {
                    Ok(i) => accessors.push(Accessor::Index(i)),
                    Err(_) => return Err(malformed(&format!("index `{index}` is too large"))),
                }
            } else {
                accessors.push(Accessor::Key(index.to_owned()));
            }
            rest = &after_open[len + 1..];
        } else {
            // Python requires `.` or `[` after `]`.
            return Err(malformed("expected `.` or `[` after `]`"));
        }
    }

    Ok(Placeholder {
        root: root.to_owned(),
        accessors,
        range,
    })
}

fn has_outside_brackets(text: &str, needles: &[char]) -> bool {
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            c if depth == 0 && needles.contains(&c) => return true,
            _ => {}
        }
    }
    false
}

/// A Rust-shaped identifier (keywords are rejected later, by `syn`, when the
/// token is built).
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_alphabetic() => {}
        _ => return false,
    }
    s != "_" && chars.all(|c| c == '_' || c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> Template {
        Template::parse(src).unwrap_or_else(|e| panic!("{src:?} should parse: {e:?}"))
    }

    fn errs(src: &str) -> Vec<TemplateError> {
        match Template::parse(src) {
            Ok(t) => panic!("{src:?} should not parse, got {t:?}"),
            Err(e) => e,
        }
    }

    fn ph(root: &str, accessors: Vec<Accessor>, range: Range<usize>) -> Segment {
        Segment::Placeholder(Placeholder {
            root: root.into(),
            accessors,
            range,
        })
    }

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.into())
    }

    #[test]
    fn manila_template() {
        let t = ok("lock-{f_name}-{foo.val}-{bar[val]}");
        assert_eq!(
            t.segments,
            vec![
                lit("lock-"),
                ph("f_name", vec![], 6..12),
                lit("-"),
                ph("foo", vec![Accessor::Field("val".into())], 15..22),
                lit("-"),
                ph("bar", vec![Accessor::Key("val".into())], 25..33),
            ]
        );
    }

    #[test]
    fn accessors() {
        let t = ok("{self.id}{v[0]}{pair.0}{a.b[c d].e[12]}");
        let p: Vec<_> = t.placeholders().map(|p| p.accessors.clone()).collect();
        assert_eq!(
            p,
            vec![
                vec![Accessor::Field("id".into())],
                vec![Accessor::Index(0)],
                vec![Accessor::Field("0".into())],
                vec![
                    Accessor::Field("b".into()),
                    Accessor::Key("c d".into()),
                    Accessor::Field("e".into()),
                    Accessor::Index(12)
                ],
            ]
        );
    }

    #[test]
    fn keys_may_hold_format_characters() {
        let t = ok("{m[a:b!c]}");
        let p = t.placeholders().next().unwrap();
        assert_eq!(p.accessors, vec![Accessor::Key("a:b!c".into())]);
    }

    #[test]
    fn escapes() {
        assert_eq!(ok("{{x}}").segments, vec![lit("{x}")]);
        assert_eq!(ok("{{}}").segments, vec![lit("{}")]);
        assert_eq!(
            ok("a{{{b}}}c").segments,
            vec![lit("a{"), ph("b", vec![], 4..5), lit("}c")]
        );
        assert_eq!(ok("").segments, vec![]);
        assert_eq!(ok("plain").segments, vec![lit("plain")]);
    }

    #[test]
    fn unicode() {
        let t = ok("é-{名前}-ü{x.ñ}");
        let roots: Vec<_> = t.placeholders().map(|p| p.root.as_str()).collect();
        assert_eq!(roots, ["名前", "x"]);
        // Ranges are byte ranges that slice the source on char boundaries.
        let src = "é-{名前}-ü{x.ñ}";
        for p in t.placeholders() {
            assert_eq!(&src[p.range.clone()], p.to_string());
        }
    }

    #[test]
    fn error_kinds() {
        assert_eq!(
            errs("{"),
            vec![TemplateError {
                kind: ErrorKind::Unclosed,
                range: 0..1
            }]
        );
        assert_eq!(
            errs("}"),
            vec![TemplateError {
                kind: ErrorKind::UnmatchedClose,
                range: 0..1
            }]
        );
        assert_eq!(errs("a{}b")[0].kind, ErrorKind::Empty);
        assert_eq!(errs("{0}")[0].kind, ErrorKind::Positional("0".into()));
        assert_eq!(errs("{a:>8}")[0].kind, ErrorKind::FormatSpec("a:>8".into()));
        assert_eq!(errs("{a!r}")[0].kind, ErrorKind::FormatSpec("a!r".into()));
        for bad in [
            "{a.}",
            "{a[}",
            "{a[]}",
            "{.a}",
            "{[0]}",
            "{a b}",
            "{ a}",
            "{a-b}",
            "{a..b}",
            "{a[0]x}",
            "{_}",
            "{a.b c}",
            "{a[[0]]}",
            "{a.-1}",
            "{a[99999999999999999999999]}",
            "{1a}",
            "{a{b}",
        ] {
            let e = errs(bad);
            assert!(
                matches!(e[0].kind, ErrorKind::Malformed { .. }),
                "{bad:?} gave {e:?}"
            );
        }
    }

    #[test]
    fn reports_every_error() {
        let e = errs("{}-}-{0}-{ok}-{a.}");
        let kinds: Vec<_> = e.iter().map(|e| &e.kind).collect();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        assert_eq!(*kinds[0], ErrorKind::Empty);
        assert_eq!(*kinds[1], ErrorKind::UnmatchedClose);
    }

    #[test]
    fn check_names() {
        let params = vec!["self".to_owned(), "scan_id".to_owned()];
        assert!(ok("{f_name}-{self.id}-{scan_id}").check(&params).is_empty());
        let e = ok("{scan}-{f_name}").check(&params);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].range, 1..5);
        assert_eq!(
            e[0].to_string(),
            "unknown name `scan` in lock name template; available: `f_name`, `self`, `scan_id`"
        );
        let e = ok("{f_name}").check(&["f_name".to_owned()]);
        assert_eq!(e[0].kind, ErrorKind::AmbiguousFName);
        let e = ok("{f_name.len}").check(&[]);
        assert_eq!(e[0].kind, ErrorKind::FNameAccessor);
    }

    #[test]
    fn round_trip() {
        for src in [
            "",
            "x",
            "lock-{f_name}-{foo.val}-{bar[val]}",
            "{{literal}}",
            "{a}{b}",
            "{self.id}-{v[0]}-{pair.0}-{m[some key]}",
            "é{名前}}}",
        ] {
            let t = ok(src);
            let rendered = t.to_string();
            assert_eq!(rendered, src);
            let again = ok(&rendered);
            let strip = |t: &Template| {
                t.segments
                    .iter()
                    .map(|s| match s {
                        Segment::Placeholder(p) => format!("P{p}"),
                        Segment::Literal(l) => format!("L{l}"),
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(strip(&t), strip(&again));
        }
    }

    #[test]
    fn never_panics() {
        // Every short string over an alphabet of the characters the parser
        // branches on, plus multi-byte ones, must parse or error; and
        // every error's range must slice the source.
        let alphabet = ['{', '}', '[', ']', '.', ':', '!', 'a', '0', ' ', 'é', '🦀'];
        let mut buf = Vec::new();
        fn walk(buf: &mut Vec<char>, alphabet: &[char], depth: usize) {
            let s: String = buf.iter().collect();
            let checked = match Template::parse(&s) {
                Ok(t) => {
                    let _ = t.check(&["a".into()]);
                    let again = t.to_string();
                    Template::parse(&again).map(|_| ()).map_err(|e| (again, e))
                }
                Err(errors) => {
                    for e in &errors {
                        assert!(s.get(e.range.clone()).is_some(), "{s:?}: {e:?}");
                        let _ = e.to_string();
                    }
                    Ok(())
                }
            };
            assert!(checked.is_ok(), "{s:?} re-rendered to {checked:?}");
            if depth == 0 {
                return;
            }
            for &c in alphabet {
                buf.push(c);
                walk(buf, alphabet, depth - 1);
                buf.pop();
            }
        }
        walk(&mut buf, &alphabet, 5);
    }
}
