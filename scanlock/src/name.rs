//! Lock names and their mapping to file names under `<root>/.locks/`.
//!
//! The mapping gives every name a *stem*; the file back end derives its files by
//! appending a fixed suffix (`.lock`, `.gate`, `.holders`). Three disjoint kinds of stem
//! make the mapping injective:
//!
//! | name | stem | why |
//! |---|---|---|
//! | `[A-Za-z0-9._-]+`, not starting with `.`, ≤ 200 bytes | the name itself | plantdb and `flock(1)` users find `<scan_id>.lock` where they expect it |
//! | anything else whose encoding is ≤ 200 bytes | `%` + percent-encoding | never starts like a plain name (plain names have no `%`) |
//! | longer names | `#` + SHA-256 of the name, hex | file names are limited to 255 bytes |
//!
//! A stem never contains `/` and never starts with `.`, so no name can reach outside
//! `.locks/` or collide with scanlock's hidden internal files. Stems are compared
//! byte-wise, so this mapping assumes a case-sensitive file system (Linux).

use sha2::{Digest, Sha256};

use crate::LockError;

/// Longest stem written as-is; leaves room for suffixes within NAME_MAX (255).
const MAX_STEM: usize = 200;

/// A validated lock name and the stem of its files.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct LockName {
    name: String,
    stem: String,
}

impl LockName {
    /// Validates `name` and computes its stem.
    pub(crate) fn new(name: &str) -> Result<LockName, LockError> {
        if name.is_empty() {
            return Err(LockError::InvalidName {
                name: String::new(),
                reason: "the empty string is not a lock name; use a scan id such as \"scan001\"",
            });
        }
        if name.contains('\0') {
            return Err(LockError::InvalidName {
                name: name.escape_default().to_string(),
                reason: "lock names cannot contain NUL bytes",
            });
        }
        Ok(LockName {
            name: name.to_owned(),
            stem: stem_for(name),
        })
    }

    /// The name as the caller gave it.
    pub(crate) fn as_str(&self) -> &str {
        &self.name
    }

    /// The file-name stem (see the module docs).
    pub(crate) fn stem(&self) -> &str {
        &self.stem
    }

    /// True when the name maps to `<name>.lock`, the layout plantdb and `flock(1)` use.
    pub(crate) fn is_plain(&self) -> bool {
        self.stem == self.name
    }
}

fn is_plain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// The stem of a name already known to be non-empty and NUL-free.
pub(crate) fn stem_for(name: &str) -> String {
    let bytes = name.as_bytes();
    if bytes.len() <= MAX_STEM && bytes[0] != b'.' && bytes.iter().all(|&b| is_plain_byte(b)) {
        return name.to_owned();
    }
    let mut encoded = String::with_capacity(bytes.len() + 8);
    encoded.push('%');
    for &b in bytes {
        if is_plain_byte(b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
        if encoded.len() > MAX_STEM {
            break;
        }
    }
    if encoded.len() <= MAX_STEM {
        return encoded;
    }
    let digest = Sha256::digest(bytes);
    let mut hashed = String::with_capacity(65);
    hashed.push('#');
    for b in digest {
        hashed.push_str(&format!("{b:02x}"));
    }
    hashed
}

/// The name a stem stands for, where the stem can be decoded (plain and percent-encoded
/// stems; hashed stems cannot).
pub(crate) fn name_for_stem(stem: &str) -> Option<String> {
    if let Some(enc) = stem.strip_prefix('%') {
        let bytes = enc.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        let name = String::from_utf8(out).ok()?;
        // A planted file (`%.lock`, `%%00.lock`) decodes to no valid name: the empty
        // string (on which `stem_for` must never be called) or one with a NUL.
        if LockName::new(&name).is_err() {
            return None;
        }
        return (stem_for(&name) == stem).then_some(name);
    }
    (!stem.is_empty() && stem_for(stem) == stem).then(|| stem.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn stems_that_decode_to_no_valid_name_are_none_never_a_panic() {
        for stem in [
            "%", "%%00", "%%", "%%0", "%%zz", "%%c3", "", "%a%00b", "%%2e%00",
        ] {
            assert_eq!(name_for_stem(stem), None, "{stem:?}");
        }
    }

    proptest::proptest! {
        /// Any file stem: no panic, and a decoded name maps back to that very stem.
        #[test]
        fn any_stem_decodes_totally(stem in "%?[%0-9a-fA-F.\\x00-\\x7f]{0,12}") {
            if let Some(name) = name_for_stem(&stem) {
                let n = LockName::new(&name).unwrap();
                proptest::prop_assert_eq!(n.stem(), stem.as_str());
            }
        }
    }

    #[test]
    fn plain_names_map_to_themselves() {
        for n in ["scan001", "a.b-c_d", "X", "scan.lock", "0"] {
            assert_eq!(LockName::new(n).unwrap().stem(), n);
            assert!(LockName::new(n).unwrap().is_plain());
        }
    }

    #[test]
    fn other_names_are_encoded_inside_the_directory() {
        for n in [
            "..",
            ".",
            "a/b",
            "../../etc/passwd",
            "é",
            " ",
            "%41",
            "#x",
            ".hidden",
        ] {
            let s = stem_for(n);
            assert!(!s.contains('/'), "{n:?} -> {s}");
            assert!(!s.starts_with('.'), "{n:?} -> {s}");
            assert!(s.starts_with('%'), "{n:?} -> {s}");
        }
        assert_eq!(stem_for("a/b"), "%a%2Fb");
        assert_eq!(stem_for("%41"), "%%2541");
    }

    #[test]
    fn long_names_are_hashed_and_short_enough() {
        let long = "x".repeat(10_000);
        let s = stem_for(&long);
        assert!(s.starts_with('#') && s.len() == 65, "{s}");
        let long_unicode = "é".repeat(10_000);
        assert_ne!(stem_for(&long_unicode), s);
        assert!(stem_for(&"y".repeat(MAX_STEM)).len() == MAX_STEM);
    }

    #[test]
    fn mapping_is_injective_on_tricky_sets() {
        let mut names: Vec<String> = vec![
            "a".into(),
            "A".into(),
            "a.".into(),
            "%a".into(),
            "%25a".into(),
            "#a".into(),
            ".a".into(),
            "a/".into(),
            "a%2F".into(),
            "x".repeat(MAX_STEM),
            "x".repeat(MAX_STEM + 1),
            "/".repeat(66),
            "/".repeat(67),
        ];
        for i in 0..300u32 {
            names.push(char::from_u32(i).map(|c| c.to_string()).unwrap_or_default());
        }
        names.retain(|n| !n.is_empty() && !n.contains('\0'));
        let mut seen = HashMap::new();
        for n in &names {
            if let Some(prev) = seen.insert(stem_for(n), n.clone()) {
                assert_eq!(&prev, n, "collision");
            }
        }
    }

    #[test]
    fn stems_decode_back_to_names() {
        for n in ["scan001", "a/b", "..", "é", "%41", "#x", "sp ace"] {
            assert_eq!(name_for_stem(&stem_for(n)).as_deref(), Some(n));
        }
        assert_eq!(name_for_stem(&stem_for(&"x".repeat(300))), None);
        assert_eq!(name_for_stem("%zz"), None);
        assert_eq!(name_for_stem("%a%2"), None);
        assert_eq!(name_for_stem(".hidden"), None);
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;
        use std::collections::HashMap;
        use std::path::{Component, Path};

        fn valid(name: &str) -> bool {
            !name.is_empty() && !name.contains('\0')
        }

        /// Stems built from the characters the encodings use, so that collisions
        /// between the plain, percent and hashed forms would be found if they existed.
        fn tricky() -> impl Strategy<Value = String> {
            // Regexes compiled once (a `&str` strategy recompiles on every value).
            let re = |r: &str| proptest::string::string_regex(r).unwrap();
            prop_oneof![
                re("[a%#./2F5é ]{1,6}"),
                re("%[0-9A-F]{2}[a-z%]{0,4}"),
                // Around the length where plain and percent stems give way to hashes;
                // a long run of one byte plus a random tail keeps generation cheap.
                (180usize..215, re("[x%/]{0,6}"), prop::bool::ANY).prop_map(|(n, tail, slash)| {
                    let fill = if slash { "/" } else { "x" };
                    format!(
                        "{}{tail}",
                        fill.repeat(n.saturating_sub(tail.len()) / fill.len())
                    )
                }),
            ]
        }

        proptest! {
            // Enough cases to cover every stem kind many times over, few enough for the
            // default `cargo test` run (debug builds of proptest are slow).
            #![proptest_config(ProptestConfig::with_cases(500))]

            #[test]
            fn every_name_maps_to_one_safe_file_inside_the_directory(name in any::<String>()) {
                prop_assume!(valid(&name));
                let stem = LockName::new(&name).unwrap().stem().to_owned();
                prop_assert!(!stem.is_empty());
                prop_assert!(!stem.starts_with('.'), "{:?} -> {:?}", name, stem);
                prop_assert!(!stem.contains('/') && !stem.contains('\0'));
                prop_assert!(stem.len() <= MAX_STEM.max(65));
                // The longest suffix still fits NAME_MAX (255 bytes).
                prop_assert!(stem.len() + ".holders".len() <= 255);
                for suffix in [".lock", ".gate", ".holders", ".info"] {
                    let p = Path::new("/r/.locks").join(format!("{stem}{suffix}"));
                    prop_assert_eq!(p.parent(), Some(Path::new("/r/.locks")));
                    prop_assert!(p.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_))));
                }
                if !stem.starts_with('#') {
                    prop_assert_eq!(name_for_stem(&stem), Some(name.clone()));
                }
            }

            #[test]
            fn the_mapping_is_injective(names in prop::collection::vec(tricky(), 1..32)) {
                let mut seen: HashMap<String, &String> = HashMap::new();
                for n in &names {
                    if let Some(prev) = seen.insert(stem_for(n), n) {
                        prop_assert_eq!(prev, n, "two names share a file");
                    }
                }
            }

            #[test]
            fn distinct_arbitrary_names_never_share_a_file(a in any::<String>(), b in any::<String>()) {
                prop_assume!(valid(&a) && valid(&b) && a != b);
                prop_assert_ne!(stem_for(&a), stem_for(&b));
            }
        }
    }

    #[test]
    fn invalid_names() {
        assert!(matches!(
            LockName::new(""),
            Err(LockError::InvalidName { .. })
        ));
        let e = LockName::new("a\0b").unwrap_err();
        assert!(e.to_string().contains("a\\u{0}b"), "{e}");
    }
}
