trait Store {
    #[scanlock::synchronized("{scan_id}")]
    fn write(&self, scan_id: &str) -> std::io::Result<()>;
}

fn main() {}
