//! Rebuild when the web assets change: rust-embed reads them at compile time in release
//! builds, and cargo would not otherwise notice `npm ci` adding packages.

fn main() {
    println!("cargo:rerun-if-changed=../web/static");
    println!("cargo:rerun-if-changed=../web/templates");
    println!("cargo:rerun-if-changed=../web/node_modules/.package-lock.json");
    println!("cargo:rerun-if-changed=../migrations");
}
