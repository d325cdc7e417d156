//! `.dockerignore`, with Docker's rules (moby/patternmatcher and its `ignorefile` reader,
//! which the docker CLI applies when it sends a build context).
//!
//! Reading: a line starting with `#` (in the first column) is a comment; other lines are
//! trimmed, a leading `!` makes an exception, the pattern is cleaned like Go's
//! `filepath.Clean` and a leading `/` dropped (patterns are relative to the context root).
//! There are no inline comments: `Dockerfile # x` is the pattern for a file named
//! `Dockerfile # x`.
//!
//! Matching: `*` is any run of characters but `/`, `?` one character but `/`, `[...]` a
//! character class (`[^...]` negated, `\` escapes), `**` any number of directories (also
//! none), a trailing `**` anything below. The last pattern that matches decides, and a
//! path also matches when one of its parent directories does, so an exception can
//! re-include a file inside an excluded directory (`logs` then `!logs/keep.txt`).
//!
//! Where Docker's translation of a pattern into a Go regexp is odd, this follows the
//! regexp: `a**b` is `a(.*/)?b` (it matches `ab` and `a/x/b`, not `axb`), `^` in a pattern
//! that has wildcards anchors at the start, and `*`, `?`, `**` do not match a newline.
//! Inside `[...]` the syntax of Go's `filepath.Match` is used (Docker validates with it);
//! Docker's regexp would also read `[[:alpha:]]` or `\d` as regexp classes and mangles
//! `*` or `?` inside brackets, which is not reproduced.

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
    error: Option<String>,
}

#[derive(Debug, Clone)]
struct Pattern {
    exclusion: bool,
    /// The pattern matches a path when any of these token lists matches all of it.
    alts: Vec<Vec<Tok>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `?`: one character but `/`.
    NotSlash,
    /// `*`: any run of characters but `/`.
    Star,
    /// A trailing `**` after a wildcard (regexp `.*`): any run without a newline.
    DotStar,
    /// `**` before more pattern (regexp `(.*/)?`): nothing, or anything ending in `/`.
    Dirs,
    /// Anything at all (Docker's prefix and suffix matches compare strings).
    Any,
    Class(Class),
    /// A `^` (regexp beginning-of-text).
    Begin,
}

#[derive(Debug, Clone, PartialEq)]
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

impl Ignore {
    /// Parses a `.dockerignore`. Never fails: a malformed pattern is left out of matching
    /// and reported by [`Ignore::error`] (Docker refuses to build with it).
    pub fn parse(text: &str) -> Ignore {
        let mut ignore = Ignore::default();
        for (n, line) in text.split('\n').enumerate() {
            let mut line = line.strip_suffix('\r').unwrap_or(line);
            if n == 0 {
                line = line.strip_prefix('\u{feff}').unwrap_or(line);
            }
            if line.len() > 64 * 1024 - 1 {
                ignore
                    .error
                    .get_or_insert_with(|| "bufio.Scanner: token too long".into());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            // The CLI's reader (moby/patternmatcher/ignorefile.ReadAll).
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let invert = pattern.starts_with('!');
            if invert {
                pattern = pattern[1..].trim();
            }
            let mut cleaned = String::new();
            if !pattern.is_empty() {
                cleaned = clean(pattern);
                if cleaned.len() > 1 && cleaned.starts_with('/') {
                    cleaned.remove(0);
                }
            }
            let entry = if invert { format!("!{cleaned}") } else { cleaned };
            // The matcher (patternmatcher.New) cleans again and compiles.
            match compile(&entry) {
                Ok(Some(p)) => ignore.patterns.push(p),
                Ok(None) => {}
                Err(e) => {
                    ignore.error.get_or_insert(e);
                }
            }
        }
        ignore
    }

    /// Why Docker would refuse this file (`syntax error in pattern`,
    /// `illegal exclusion pattern: "!"`), if it would.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Whether the file has no pattern at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded from the
    /// context. The context root itself never is.
    pub fn matches(&self, path: &str) -> bool {
        let path = relative(path);
        if path == "." {
            return false;
        }
        let chars: Vec<char> = path.chars().collect();
        let mut matched = false;
        for p in &self.patterns {
            // An inclusion only matters while not excluded, an exception only while excluded.
            if p.exclusion != matched {
                continue;
            }
            let hit = p.matches_path_or_parent(&chars);
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether a walker can skip `dir` entirely: it is excluded and no exception could
    /// re-include anything below it. (The docker CLI decides this with a cruder test, an
    /// exception whose text starts with `dir/`; the two agree except for exceptions such
    /// as `!**/keep` or `!*/keep`, which Docker then fails to apply inside excluded
    /// directories, while this keeps descending.)
    pub fn can_skip_dir(&self, dir: &str) -> bool {
        if !self.matches(dir) {
            return false;
        }
        let dir = relative(dir);
        let prefix: Vec<char> = dir.chars().chain(['/']).collect();
        !self
            .patterns
            .iter()
            .any(|p| p.exclusion && p.could_match_below(&prefix))
    }
}

/// A path as the matcher sees it: cleaned, relative to the context.
fn relative(path: &str) -> String {
    let cleaned = clean(path);
    let trimmed = cleaned.trim_start_matches('/');
    if trimmed.is_empty() {
        ".".into()
    } else {
        trimmed.to_string()
    }
}

/// Go's `path.Clean`.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let p = path.as_bytes();
    let rooted = p[0] == b'/';
    let n = p.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let (mut r, mut dotdot) = (0, 0);
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    while r < n {
        if p[r] == b'/' || (p[r] == b'.' && (r + 1 == n || p[r + 1] == b'/')) {
            // An empty element or `.`.
            r += 1;
        } else if p[r] == b'.' && p[r + 1] == b'.' && (r + 2 == n || p[r + 2] == b'/') {
            r += 2;
            if out.len() > dotdot {
                // Back up to the previous separator (or to what `..` cannot remove).
                let mut w = out.len() - 1;
                while w > dotdot && out[w] != b'/' {
                    w -= 1;
                }
                out.truncate(w);
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && p[r] != b'/' {
                out.push(p[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        return ".".into();
    }
    String::from_utf8_lossy(&out).into_owned()
}

const BAD_PATTERN: &str = "syntax error in pattern";

/// Compiles one line as `patternmatcher.New` does. `Ok(None)` for a blank pattern.
fn compile(entry: &str) -> Result<Option<Pattern>, String> {
    let p = entry.trim();
    if p.is_empty() {
        return Ok(None);
    }
    let p = clean(p);
    let (exclusion, text) = match p.strip_prefix('!') {
        Some("") => return Err("illegal exclusion pattern: \"!\"".into()),
        Some(rest) => (true, rest.to_string()),
        None => (false, p),
    };
    let chars: Vec<char> = text.chars().collect();
    validate(&chars).map_err(|()| BAD_PATTERN.to_string())?;

    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let mut kind = Kind::Exact;
    let mut toks = Vec::new();
    let mut i = 0;
    let mut iteration = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                // `**/` is `**`.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        toks.push(Tok::DotStar);
                        kind = Kind::Regexp;
                    }
                } else {
                    toks.push(Tok::Dirs);
                    kind = Kind::Regexp;
                }
                if iteration == 0 {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                toks.push(Tok::Star);
                kind = Kind::Regexp;
            }
            '?' => {
                toks.push(Tok::NotSlash);
                kind = Kind::Regexp;
            }
            '\\' => match chars.get(i) {
                Some(&c) => {
                    i += 1;
                    toks.push(Tok::Lit(c));
                    kind = Kind::Regexp;
                }
                None => toks.push(Tok::Lit('\\')),
            },
            '[' => {
                let (class, next) = parse_class(&chars, i).ok_or_else(|| BAD_PATTERN.to_string())?;
                i = next;
                toks.push(Tok::Class(class));
                kind = Kind::Regexp;
            }
            ']' => {
                toks.push(Tok::Lit(']'));
                kind = Kind::Regexp;
            }
            '^' => toks.push(Tok::Begin),
            c => toks.push(Tok::Lit(c)),
        }
        iteration += 1;
    }

    let lits = |s: &[char]| s.iter().map(|c| Tok::Lit(*c)).collect::<Vec<_>>();
    let alts = match kind {
        Kind::Exact => vec![lits(&chars)],
        Kind::Prefix => {
            let mut t = lits(&chars[..chars.len() - 2]);
            t.push(Tok::Any);
            vec![t]
        }
        Kind::Suffix => {
            // `**/foo` matches any path ending in `/foo`, and `foo` itself.
            let suffix = &chars[2..];
            let mut any = vec![Tok::Any];
            any.extend(lits(suffix));
            let mut alts = vec![any];
            if suffix.first() == Some(&'/') {
                alts.push(lits(&suffix[1..]));
            }
            alts
        }
        Kind::Regexp => vec![toks],
    };
    Ok(Some(Pattern { exclusion, alts }))
}

/// Parses a class after its `[` with `filepath.Match` syntax; returns it and the index
/// after its `]`.
fn parse_class(chars: &[char], mut i: usize) -> Option<(Class, usize)> {
    let mut negated = false;
    if chars.get(i) == Some(&'^') {
        negated = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if chars.get(i) == Some(&']') && !ranges.is_empty() {
            return Some((Class { negated, ranges }, i + 1));
        }
        let (lo, next) = class_char(chars, i)?;
        i = next;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            let (h, next) = class_char(chars, i + 1)?;
            hi = h;
            i = next;
        }
        if hi < lo {
            return None;
        }
        ranges.push((lo, hi));
    }
}

/// `getEsc`: one class character, possibly escaped; it must be followed by more.
fn class_char(chars: &[char], mut i: usize) -> Option<(char, usize)> {
    let c = *chars.get(i)?;
    if c == '-' || c == ']' {
        return None;
    }
    if c == '\\' {
        i += 1;
    }
    let c = *chars.get(i)?;
    i += 1;
    if i >= chars.len() {
        return None;
    }
    Some((c, i))
}

/// `filepath.Match`'s syntax check.
fn validate(chars: &[char]) -> Result<(), ()> {
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err(());
                }
                i += 2;
            }
            '[' => {
                if i + 1 >= chars.len() {
                    return Err(());
                }
                let (_, next) = parse_class(chars, i + 1).ok_or(())?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

impl Pattern {
    /// Whether the pattern matches the (clean, relative) path or one of its parent
    /// directories: the prefixes that end before a `/`. One pass over the path.
    fn matches_path_or_parent(&self, path: &[char]) -> bool {
        self.alts.iter().any(|toks| {
            let m = toks.len();
            let mut states = start_states(toks);
            for (i, &c) in path.iter().enumerate() {
                if c == '/' && i > 0 && states[m] {
                    return true;
                }
                states = step(toks, &states, c);
                if !states.iter().any(|s| *s) {
                    return false;
                }
            }
            states[m]
        })
    }

    /// Whether some path starting with `prefix` could match.
    fn could_match_below(&self, prefix: &[char]) -> bool {
        self.alts.iter().any(|toks| {
            let mut states = start_states(toks);
            for &c in prefix {
                states = step(toks, &states, c);
            }
            let m = toks.len();
            // A state is alive when the rest of the pattern can still match; only a `^`
            // cannot, once past the start.
            let dead_from = toks.iter().rposition(|t| *t == Tok::Begin).map_or(0, |i| i + 1);
            (dead_from..=m).any(|i| states[i]) || (dead_from..m).any(|i| states[m + 1 + i])
        })
    }
}

// The automaton: state `i` (0..=m) is "before token i", state `m + 1 + i` is "inside the
// `(.*/)?` of token i".

fn start_states(toks: &[Tok]) -> Vec<bool> {
    let mut states = vec![false; 2 * toks.len() + 1];
    states[0] = true;
    close(toks, &mut states, true);
    states
}

fn close(toks: &[Tok], states: &mut [bool], at_start: bool) {
    let m = toks.len();
    for i in 0..m {
        if !states[i] {
            continue;
        }
        match toks[i] {
            Tok::Star | Tok::DotStar | Tok::Any => states[i + 1] = true,
            Tok::Dirs => {
                states[i + 1] = true;
                states[m + 1 + i] = true;
            }
            Tok::Begin if at_start => states[i + 1] = true,
            _ => {}
        }
    }
}

fn step(toks: &[Tok], states: &[bool], c: char) -> Vec<bool> {
    let m = toks.len();
    let mut next = vec![false; states.len()];
    for i in 0..m {
        if states[i] {
            match &toks[i] {
                Tok::Lit(l) if *l == c => next[i + 1] = true,
                Tok::NotSlash if c != '/' => next[i + 1] = true,
                Tok::Class(class) if class.matches(c) => next[i + 1] = true,
                Tok::Star if c != '/' => next[i] = true,
                Tok::DotStar if c != '\n' => next[i] = true,
                Tok::Any => next[i] = true,
                _ => {}
            }
        }
        if states[m + 1 + i] {
            if c != '\n' {
                next[m + 1 + i] = true;
            }
            if c == '/' {
                next[i + 1] = true;
            }
        }
    }
    close(toks, &mut next, false);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(patterns: &str, path: &str) -> bool {
        Ignore::parse(patterns).matches(path)
    }

    #[test]
    fn go_clean() {
        for (input, want) in [
            ("", "."),
            ("a/b", "a/b"),
            ("a//b/", "a/b"),
            ("/a/./b/../c", "/a/c"),
            ("./a", "a"),
            ("a/..", "."),
            ("a/../..", ".."),
            ("../a/../b", "../b"),
            ("/..", "/"),
            ("/../a", "/a"),
            ("a/b/../../..", ".."),
            ("abc/def/../ghi", "abc/ghi"),
            ("//", "/"),
            ("**/__pycache__/", "**/__pycache__"),
        ] {
            assert_eq!(clean(input), want, "{input:?}");
        }
    }

    /// Syllabus seed 000: `node_modules`, `.git`, `*.log`, `tmp/*`.
    #[test]
    fn syllabus_000() {
        let ig = Ignore::parse("# Dependencies\nnode_modules\n.git\n*.log\ntmp/*\n");
        assert!(ig.matches("node_modules"));
        assert!(ig.matches("node_modules/express/index.js"));
        assert!(ig.matches(".git/HEAD"));
        assert!(ig.matches("error.log"));
        assert!(!ig.matches("logs/error.log"), "*.log only matches at the top");
        assert!(ig.matches("tmp/x"));
        assert!(ig.matches("tmp/x/y"));
        assert!(!ig.matches("tmp"), "tmp/* leaves the directory itself");
        assert!(!ig.matches("app.js"));
        assert!(!ig.matches("src/node_modules"), "node_modules only at the top");
        assert!(ig.can_skip_dir("node_modules"));
        assert!(ig.can_skip_dir("tmp/cache"));
        assert!(!ig.can_skip_dir("tmp"));
        assert!(ig.error().is_none());
    }

    /// Syllabus seed 001: `logs/*` + `!logs/important.log`, `**/__pycache__/`.
    #[test]
    fn syllabus_001() {
        let ig =
            Ignore::parse("*.pyc\n__pycache__/\n.env\n.git/\nsecrets/\nlogs/*\n!logs/important.log\n**/__pycache__/\n");
        assert!(ig.matches("logs/debug.log"));
        assert!(!ig.matches("logs/important.log"));
        assert!(!ig.matches("logs"));
        assert!(ig.matches("__pycache__/a.pyc"));
        assert!(ig.matches("pkg/sub/__pycache__"));
        assert!(ig.matches("pkg/sub/__pycache__/mod.cpython-312.pyc"));
        assert!(!ig.matches("pkg/sub/mod.py"));
        assert!(ig.matches("main.pyc"));
        assert!(!ig.matches("pkg/main.pyc"));
        assert!(ig.matches("secrets/key"));
        assert!(ig.matches(".env"));
        assert!(!ig.matches(".envrc"));
        assert!(ig.can_skip_dir("pkg/__pycache__"));
        assert!(ig.can_skip_dir("secrets"));
    }

    /// Errata 15: there are no inline comments.
    #[test]
    fn inline_comment_is_part_of_the_pattern() {
        let ig = Ignore::parse("Dockerfile # Often excluded\nREADME.md\n");
        assert!(!ig.matches("Dockerfile"));
        assert!(ig.matches("Dockerfile # Often excluded"));
        assert!(ig.matches("README.md"));
        // A comment must start in the first column; an indented `#` line is a pattern.
        let ig = Ignore::parse("  # not a comment\n");
        assert!(ig.matches("# not a comment"));
    }

    #[test]
    fn exceptions_reinclude_inside_excluded_directories() {
        let ig = Ignore::parse("logs\n!logs/keep.txt\n");
        assert!(ig.matches("logs"));
        assert!(ig.matches("logs/a.txt"));
        assert!(!ig.matches("logs/keep.txt"));
        assert!(!ig.can_skip_dir("logs"), "an exception lies below");
        // The last matching pattern wins.
        let ig = Ignore::parse("*.md\n!README.md\nREADME.md\n");
        assert!(ig.matches("README.md"));
        let ig = Ignore::parse("*\n!src\n");
        assert!(!ig.matches("src/main.rs"));
        assert!(ig.matches("target"));
        assert!(ig.can_skip_dir("target"));
        assert!(!ig.can_skip_dir("src"));
        // An exception with wildcards keeps a directory from being skipped.
        let ig = Ignore::parse("build\n!**/keep\n");
        assert!(!ig.matches("build/a/keep"));
        assert!(!ig.can_skip_dir("build"));
        let ig = Ignore::parse("build\n!docs/keep\n");
        assert!(ig.can_skip_dir("build"));
    }

    #[test]
    fn leading_slash_and_cleaning() {
        let ig = Ignore::parse("/secret\n./build/../dist\n!/dist/keep\n");
        assert!(ig.matches("secret"));
        assert!(ig.matches("/secret"));
        assert!(ig.matches("./secret/x"));
        assert!(ig.matches("dist/a"));
        assert!(!ig.matches("dist/keep"));
        assert!(!ig.matches("build"));
        assert!(!ig.matches("."));
        assert!(!ig.matches(""));
        assert!(!Ignore::parse("*\n").matches("/"));
    }

    #[test]
    fn wildcards() {
        assert!(excluded("*", "a"));
        assert!(excluded("*", "a/b"), "the parent matches");
        assert!(excluded("a?c", "abc"));
        assert!(!excluded("a?c", "a/c"));
        assert!(excluded("*/b", "a/b"));
        assert!(!excluded("*/b", "a/c/b"));
        assert!(excluded("**/b", "b"));
        assert!(excluded("**/b", "a/c/b"));
        assert!(excluded("**/b", "a/c/b/d"));
        assert!(!excluded("**/b", "ab"));
        assert!(excluded("**", "x/y"));
        assert!(excluded("a/**", "a/x/y"));
        assert!(!excluded("a/**", "a"));
        assert!(excluded("a/**/b", "a/b"));
        assert!(excluded("a/**/b", "a/x/y/b"));
        assert!(!excluded("a/**/b", "a/xb"));
        assert!(excluded("a**b", "ab"));
        assert!(excluded("a**b", "a/x/b"));
        assert!(!excluded("a**b", "axb"), "`**` inside a name is `(.*/)?` as in Docker");
        assert!(excluded("**/*.go", "cmd/main.go"));
        assert!(excluded("**/*.go", "main.go"));
        assert!(excluded("*.go/**", "x.go/y"));
        assert!(excluded("foo**", "foobar/baz"));
        assert!(excluded("[abc].txt", "b.txt"));
        assert!(!excluded("[abc].txt", "d.txt"));
        assert!(excluded("[a-c]*", "cat"));
        assert!(excluded("[^a-c]*", "dog"));
        assert!(!excluded("[^a-c]*", "cat"));
        assert!(excluded("[!a]x", "!x"), "`!` does not negate a class");
        assert!(excluded("\\*", "*"));
        assert!(!excluded("\\*", "a"));
        assert!(excluded("a.b", "a.b"));
        assert!(!excluded("a.b", "axb"));
        assert!(excluded("a+(b)|{c}$", "a+(b)|{c}$"));
        assert!(excluded("x^", "x^"), "no wildcard: compared as a string");
        assert!(
            !excluded("x^*", "x^y"),
            "with wildcards `^` anchors, as in Docker's regexp"
        );
        // A class (`[^/]`) matches a newline, Go's regexp `.` does not.
        assert!(excluded("*", "a\nb"));
        assert!(excluded("a*/**", "ab/cd"));
        assert!(!excluded("a*/**", "ab/c\nd"));
    }

    #[test]
    fn bad_patterns_are_reported() {
        for text in ["[", "a[", "[]", "[a", "[z-a]", "a\\", "[a-]", "!"] {
            let ig = Ignore::parse(text);
            assert!(ig.error().is_some(), "{text:?}");
            assert!(!ig.matches("a"), "{text:?}");
        }
        assert_eq!(Ignore::parse("!").error(), Some("illegal exclusion pattern: \"!\""));
        assert_eq!(Ignore::parse("!/").error(), Some("illegal exclusion pattern: \"!\""));
        assert_eq!(Ignore::parse("[").error(), Some("syntax error in pattern"));
        let ig = Ignore::parse("[\nok\n");
        assert!(ig.matches("ok"), "other patterns still work");
    }

    #[test]
    fn reading_details() {
        let ig = Ignore::parse("\u{feff}a\r\n  b  \n#d\n");
        assert!(ig.matches("a"), "BOM and CR removed");
        assert!(ig.matches("b"), "blanks trimmed");
        assert!(!ig.matches("#d"), "a comment");
        let ig = Ignore::parse("*\n!  c\n");
        assert!(!ig.matches("c"), "blanks after `!` trimmed");
        assert!(!ig.matches("c/x"));
        assert!(ig.matches("d"));
        assert!(Ignore::parse("").is_empty());
        assert!(Ignore::parse("# only\n\n").is_empty());
    }

    #[test]
    fn skipping_agrees_with_matching() {
        // Every path below a skippable directory must be excluded.
        let files = [
            "a",
            "a/b",
            "a/b/c",
            "a/b/keep",
            "a/keep",
            "logs/x.log",
            "logs/keep",
            "x/y/z",
            "x/keep/z",
            "keep",
        ];
        let dirs = ["a", "a/b", "logs", "x", "x/y", "x/keep"];
        for patterns in [
            "a\n!a/b/keep\n",
            "a\n!**/keep\n",
            "*\n!*/keep\n",
            "logs\nx\n!x/keep\n",
            "**\n!logs/*\n",
            "a/*\n!a/keep\n",
            "*/\n!x/y/z\n",
        ] {
            let ig = Ignore::parse(patterns);
            for dir in dirs {
                if !ig.can_skip_dir(dir) {
                    continue;
                }
                for f in files.iter().filter(|f| f.starts_with(&format!("{dir}/"))) {
                    assert!(ig.matches(f), "{patterns:?}: {dir} skipped but {f} is not excluded");
                }
            }
        }
    }
}
