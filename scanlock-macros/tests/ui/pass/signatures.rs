//! Every function shape the attributes accept; the expansion must not add a
//! warning to any of them.
#![deny(warnings)]

use std::collections::HashMap;
use std::fmt::Display;

#[derive(Debug)]
pub struct MyError;

impl From<scanlock::LockError> for MyError {
    fn from(_: scanlock::LockError) -> Self {
        MyError
    }
}

type ScanResult<T> = Result<T, MyError>;

/// Doc comments and attributes stay on the function.
#[must_use = "the count matters"]
#[inline]
#[scanlock::synchronized("{f_name}-{scan_id}")]
pub(crate) fn process(scan_id: &str, data: &[u8]) -> Result<usize, MyError> {
    let _ = scan_id;
    if data.is_empty() {
        return Ok(0); // `return` returns from `process`
    }
    let n: usize = "3".parse().map_err(|_| MyError)?; // so does `?`
    Ok(data.len() + n)
}

#[scanlock::read_locked]
fn read_scan(scan_id: &str) -> std::io::Result<Vec<u8>> {
    Ok(scan_id.as_bytes().to_vec())
}

#[scanlock::write_locked("{f_name}-{scan_id}")]
fn alias(scan_id: String) -> ScanResult<String> {
    // The argument was only borrowed for the name: it can still be moved.
    Ok(scan_id)
}

#[scanlock::synchronized("{a}-{b}", on_error = panic)]
fn no_result(a: u8, b: &str) -> usize {
    usize::from(a) + b.len()
}

#[scanlock::synchronized("{id}", on_error = panic)]
fn unit(id: u32) {
    let _ = id;
}

#[scanlock::synchronized("{x}-{y}")]
fn generic<T, U: Display>(
    x: T,
    y: impl Display,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>>
where
    T: Display + Clone,
{
    Ok(format!(
        "{}{}{}",
        x.clone(),
        y,
        std::marker::PhantomData::<U>.type_name()
    ))
}

trait TypeName {
    fn type_name(&self) -> &'static str;
}
impl<U> TypeName for std::marker::PhantomData<U> {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<U>()
    }
}

#[scanlock::synchronized("{v[0]}-{m[key]}-{pair.0}-{pair.1}")]
fn accessors(v: &[u32], m: &HashMap<String, i32>, pair: (u8, &str)) -> std::io::Result<()> {
    let _ = (v, m, pair);
    Ok(())
}

// A raw identifier parameter is named without its `r#`.
#[scanlock::synchronized("{type}-{id}-{n}")]
fn patterns(r#type: &str, Named { id, name: n }: Named) -> std::io::Result<()> {
    let _ = (r#type, id, n);
    Ok(())
}

struct Named {
    id: u32,
    name: String,
}

#[scanlock::synchronized("{len}")]
unsafe fn deref(p: *const u8, len: usize) -> std::io::Result<u8> {
    let _ = len;
    // SAFETY: the caller promises `p` is valid.
    Ok(unsafe { *p })
}

#[scanlock::synchronized("{x}")]
fn borrowed<'a>(x: &'a str) -> std::io::Result<&'a str> {
    Ok(x)
}

pub struct Store {
    id: u32,
    data: Vec<u8>,
}

impl Store {
    #[scanlock::synchronized("{f_name}-{self.id}")]
    fn read(&self) -> std::io::Result<&[u8]> {
        Ok(&self.data)
    }

    // A `&mut self` body after the name was built from `self.id`.
    #[scanlock::write_locked("store-{self.id}")]
    fn write(&mut self, byte: u8) -> std::io::Result<()> {
        self.data.push(byte);
        Ok(())
    }

    #[scanlock::synchronized("store-{self.id}")]
    fn into_data(self) -> std::io::Result<Vec<u8>> {
        Ok(self.data)
    }

    #[scanlock::read_locked]
    fn with_scan_id(&self, scan_id: &str) -> std::io::Result<()> {
        let _ = (self, scan_id);
        Ok(())
    }
}

trait Scans {
    fn get(&self, scan_id: &str) -> std::io::Result<usize>;

    #[scanlock::read_locked]
    fn default_method(&self, scan_id: &str) -> std::io::Result<usize> {
        self.get(scan_id)
    }
}

impl Scans for Store {
    #[scanlock::read_locked("{f_name}-{scan_id}")]
    fn get(&self, scan_id: &str) -> std::io::Result<usize> {
        Ok(self.data.len() + scan_id.len())
    }
}

fn main() {
    // Type-checks the calls; nothing runs without init_lock_root.
    let _ = || {
        let _ = process("scan001", b"data");
        let _ = read_scan("scan001");
        let _ = alias("scan001".to_owned());
        let _ = no_result(1, "x");
        unit(1);
        let _ = generic::<u8, u8>(1u8, "y");
        let _ = accessors(&[1], &HashMap::new(), (1, "a"));
        let _ = patterns(
            "t",
            Named {
                id: 1,
                name: String::new(),
            },
        );
        let _ = unsafe { deref(&0, 1) };
        let _ = borrowed("x");
        let mut s = Store {
            id: 1,
            data: vec![],
        };
        let _ = s.read();
        let _ = s.write(1);
        let _ = s.with_scan_id("x");
        let _ = s.default_method("x");
        let _ = s.into_data();
    };
}
