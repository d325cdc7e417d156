//! Parses arbitrary `.dockerignore` text and matches arbitrary paths against it.
//! Input: patterns, a NUL byte, then paths separated by newlines (without a NUL, a fixed
//! set of paths). Checks that a directory a walker may skip only holds excluded paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_runtime_fuzz::build::ignore::Ignore;

const DEFAULT_PATHS: &str =
    "a\na/b\na/b/c\nlogs/x.log\nlogs/important.log\nnode_modules/x/y.js\nsrc/__pycache__/m.pyc\n.git/HEAD\ntmp/t";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (patterns, paths) = text.split_once('\0').unwrap_or((&text, DEFAULT_PATHS));
    let ignore = Ignore::parse(patterns);
    let _ = ignore.error();
    for path in paths.split('\n') {
        let excluded = ignore.matches(path);
        // Spelling the same path differently changes nothing.
        let same = if path.starts_with('/') {
            format!("/{path}/")
        } else {
            format!("./{path}/")
        };
        assert_eq!(excluded, ignore.matches(&same), "{path:?}");
        // Only plain relative paths below: their parents are their prefixes.
        let parts: Vec<&str> = path.split('/').collect();
        if parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
            continue;
        }
        for n in 1..parts.len() {
            let dir = parts[..n].join("/");
            if ignore.can_skip_dir(&dir) {
                assert!(excluded, "{dir:?} may be skipped but {path:?} is not excluded");
            }
        }
    }
});
