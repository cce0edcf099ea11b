//! Build script of `benches`: records the versions of the peer crates (`may`, `tokio`) from
//! the workspace's Cargo.lock, so the lab's report can name exactly what it measured.
//! If the lock file cannot be read the versions are "unknown" (the build never fails here).

fn locked_version(lock: &str, name: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{name}\"") {
            let v = lines.next()?.trim();
            return v
                .strip_prefix("version = \"")
                .and_then(|r| r.strip_suffix('"'))
                .map(str::to_string);
        }
    }
    None
}

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let lock_path = std::path::Path::new(&dir).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    println!("cargo:rerun-if-changed=go/create/main.go");
    println!("cargo:rerun-if-changed=go/switch/main.go");
    println!("cargo:rerun-if-changed=go/runtime/main.go");
    let lock = std::fs::read_to_string(&lock_path).unwrap_or_default();
    for (name, var) in [("may", "LAB_MAY_VERSION"), ("tokio", "LAB_TOKIO_VERSION")] {
        let v = locked_version(&lock, name).unwrap_or_else(|| "unknown".into());
        println!("cargo:rustc-env={var}={v}");
    }
}
