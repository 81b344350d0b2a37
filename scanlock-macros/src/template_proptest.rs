//! Property tests of the template parser (`template.rs`): it never panics, every
//! error's range slices the input, and valid templates round-trip through `Display`.

use proptest::prelude::*;

use crate::template::{Accessor, Placeholder, Segment, Template};

/// A template's structure without byte ranges (which depend on the source text).
fn shape(segments: &[Segment]) -> Vec<String> {
    segments
        .iter()
        .map(|s| match s {
            Segment::Literal(l) => format!("L{l}"),
            Segment::Placeholder(p) => format!("P{p}"),
        })
        .collect()
}

/// What `parse` makes of consecutive literals: one literal.
fn merged(segments: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for s in segments {
        match (out.last_mut(), s) {
            (Some(Segment::Literal(prev)), Segment::Literal(l)) => prev.push_str(&l),
            (_, s) => out.push(s),
        }
    }
    out
}

/// A regex strategy compiled once (a `&str` strategy recompiles on every value).
fn re(r: &str) -> proptest::string::RegexGeneratorStrategy<String> {
    proptest::string::string_regex(r).unwrap()
}

fn identifier() -> impl Strategy<Value = String> {
    prop_oneof![
        re("[a-zA-Z][a-zA-Z0-9_]{0,8}"),
        re("_[a-zA-Z0-9_]{1,6}"),
        re("[éñü名前][a-z0-9]{0,3}"),
    ]
}

fn accessor() -> impl Strategy<Value = Accessor> {
    prop_oneof![
        identifier().prop_map(Accessor::Field),
        (0usize..1000).prop_map(|i| Accessor::Field(i.to_string())),
        any::<usize>().prop_map(Accessor::Index),
        // A key: anything but brackets and braces, not all digits (that is an index).
        re("[^\\[\\]{}]{1,8}")
            .prop_filter("digits are an index", |k| !k
                .bytes()
                .all(|b| b.is_ascii_digit()))
            .prop_map(Accessor::Key),
    ]
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        // Any text, braces included: Display escapes them.
        re(".{1,12}").prop_map(Segment::Literal),
        (identifier(), prop::collection::vec(accessor(), 0..4)).prop_map(|(root, accessors)| {
            Segment::Placeholder(Placeholder {
                root,
                accessors,
                range: 0..0,
            })
        }),
    ]
}

proptest! {
    // The bounded fuzz loop (torture/tests/fuzz_stable.rs) covers arbitrary input in
    // bulk; these cases check structure, and stay quick in the default test run.
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn parse_never_panics_and_errors_slice_the_input(src in ".{0,40}") {
        match Template::parse(&src) {
            Ok(t) => {
                for p in t.placeholders() {
                    prop_assert!(src.get(p.range.clone()).is_some());
                }
                let _ = t.check(&["a".to_owned(), "self".to_owned()]);
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(src.get(e.range.clone()).is_some(), "{:?}", e);
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn brace_heavy_input_never_panics(src in "[{}\\[\\].:!a0 é]{0,24}") {
        if let Err(errors) = Template::parse(&src) {
            for e in &errors {
                prop_assert!(src.get(e.range.clone()).is_some(), "{:?}", e);
            }
        }
    }

    #[test]
    fn valid_templates_round_trip(segments in prop::collection::vec(segment(), 0..6)) {
        let t = Template { segments: merged(segments) };
        let src = t.to_string();
        let parsed = Template::parse(&src);
        prop_assert!(parsed.is_ok(), "{:?} failed: {:?}", src, parsed);
        let parsed = parsed.unwrap();
        prop_assert_eq!(shape(&parsed.segments), shape(&t.segments), "{:?}", src);
        prop_assert_eq!(parsed.to_string(), src.clone());
        // Ranges point at each placeholder's text in the source.
        for p in parsed.placeholders() {
            prop_assert_eq!(&src[p.range.clone()], p.to_string());
        }
    }

    #[test]
    fn accepted_input_renders_to_a_fixed_point(src in "[{}\\[\\].a0_ é]{0,24}") {
        if let Ok(t) = Template::parse(&src) {
            let once = t.to_string();
            let again = Template::parse(&once).expect("a rendering parses");
            prop_assert_eq!(shape(&again.segments), shape(&t.segments));
            prop_assert_eq!(again.to_string(), once);
        }
    }
}
