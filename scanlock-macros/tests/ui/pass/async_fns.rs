//! `async fn`s stay `async`, and their futures stay `Send`.
#![deny(warnings)]

use std::future::Future;

fn assert_send<T: Send>(_: &T) {}

async fn step() {}

#[scanlock::synchronized("{f_name}-{scan_id}")]
async fn upload(scan_id: &str, data: Vec<u8>) -> std::io::Result<usize> {
    step().await;
    if data.is_empty() {
        return Ok(0);
    }
    Ok(data.len())
}

struct Store {
    id: u32,
    locks: scanlock::ScanLockManager,
}

impl Store {
    #[scanlock::read_locked("{self.id}", manager = self.locks)]
    async fn read(&self) -> std::io::Result<u32> {
        step().await;
        Ok(self.id)
    }

    #[scanlock::write_locked("{self.id}", manager = self.locks, on_error = panic)]
    pub async fn write(&mut self, v: u32) {
        step().await;
        self.id = v;
    }
}

fn spawnable<F: Future + Send + 'static>(f: F) -> F {
    f
}

fn main() {
    let fut = upload("scan001", vec![1]);
    assert_send(&fut);
    drop(fut);
    // An owned argument gives a 'static future, as a spawned task needs.
    drop(spawnable(async { upload("scan001", vec![]).await }));
    let _ = |s: &mut Store| {
        assert_send(&s.read());
        assert_send(&s.write(1));
    };
}
