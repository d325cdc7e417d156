//! The exec form: is the argument text a JSON array of strings? Decided as Go's
//! `json.Unmarshal` into `[]any` decides it (buildkit's `parseJSON`): any JSON syntax error
//! means "not JSON" (the shell form is used), while valid JSON with a non-string element is
//! an error. Written without recursion, so nesting depth cannot exhaust the stack; like
//! Go, nesting deeper than 10000 is a syntax error.

/// The message Docker gives for `RUN ["a", 1]`.
pub(super) const NOT_STRINGS: &str = "when using JSON array syntax, arrays must be comprised of strings only";

const MAX_DEPTH: usize = 10_000;

/// `Ok(Some(strings))` for a JSON array of strings, `Ok(None)` when the text is not JSON
/// (or not an array), `Err(NOT_STRINGS)` for a valid array with a non-string element.
pub(super) fn parse_json_array(rest: &str) -> Result<Option<Vec<String>>, &'static str> {
    let text = rest.trim_start();
    if !text.starts_with('[') {
        return Ok(None);
    }
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let Some(top) = p.document() else { return Ok(None) };
    match top {
        Some(strings) => Ok(Some(strings)),
        None => Err(NOT_STRINGS),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Container {
    Array,
    Object,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Parses the whole text as one JSON value (an array). `None` on a syntax error;
    /// otherwise `Some(Some(strings))` when every element of the top array is a string
    /// and `Some(None)` when one is not.
    fn document(&mut self) -> Option<Option<Vec<String>>> {
        self.ws();
        if self.peek() != Some(b'[') {
            return None;
        }
        self.i += 1;
        let mut stack = vec![Container::Array];
        let mut strings = Some(Vec::new());
        // Whether the next token in the current container is its first element.
        let mut first = true;
        loop {
            self.ws();
            let top = *stack.last()?;
            // Close the container, or expect a separator.
            let close = if top == Container::Array { b']' } else { b'}' };
            if self.peek() == Some(close) {
                self.i += 1;
                stack.pop();
                if stack.is_empty() {
                    break;
                }
                first = false;
                continue;
            }
            if !first {
                if self.peek() != Some(b',') {
                    return None;
                }
                self.i += 1;
                self.ws();
            }
            first = false;
            if top == Container::Object {
                self.string()?;
                self.ws();
                if self.peek() != Some(b':') {
                    return None;
                }
                self.i += 1;
                self.ws();
            }
            let at_top = stack.len() == 1;
            match self.peek()? {
                b'"' => {
                    let s = self.string()?;
                    if at_top && let Some(v) = strings.as_mut() {
                        v.push(s);
                    }
                }
                b'[' | b'{' => {
                    if at_top {
                        strings = None;
                    }
                    if stack.len() >= MAX_DEPTH {
                        return None;
                    }
                    stack.push(if self.peek() == Some(b'[') {
                        Container::Array
                    } else {
                        Container::Object
                    });
                    self.i += 1;
                    first = true;
                }
                _ => {
                    self.scalar()?;
                    if at_top {
                        strings = None;
                    }
                }
            }
        }
        self.ws();
        if self.i != self.s.len() {
            return None;
        }
        Some(strings)
    }

    /// `true`, `false`, `null` or a number. A number too large for a float64 makes Go's
    /// decoder fail, which buildkit treats as "not JSON".
    fn scalar(&mut self) -> Option<()> {
        for lit in [&b"true"[..], b"false", b"null"] {
            if self.s[self.i..].starts_with(lit) {
                self.i += lit.len();
                return Some(());
            }
        }
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        let value: f64 = text.parse().ok()?;
        value.is_finite().then_some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        let h = std::str::from_utf8(h).ok()?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        u32::from_str_radix(h, 16).ok()
    }

    /// A string, decoded as Go decodes it (bad surrogates become U+FFFD).
    fn string(&mut self) -> Option<String> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut c = self.hex4()?;
                            if (0xd800..0xdc00).contains(&c) {
                                // A high surrogate needs a low one right after it.
                                let save = self.i;
                                let mut low = None;
                                if self.s[self.i..].starts_with(b"\\u") {
                                    self.i += 2;
                                    low = self.hex4().filter(|l| (0xdc00..0xe000).contains(l));
                                }
                                match low {
                                    Some(l) => c = 0x10000 + ((c - 0xd800) << 10) + (l - 0xdc00),
                                    None => {
                                        self.i = save;
                                        c = 0xfffd;
                                    }
                                }
                            }
                            let ch = char::from_u32(c).unwrap_or('\u{fffd}');
                            let mut buf = [0; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => out.push(b),
            }
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn arrays_of_strings() {
        assert_eq!(parse_json_array(r#"["a", "b c"]"#), Ok(strs(&["a", "b c"])));
        assert_eq!(parse_json_array(" [ ] "), Ok(strs(&[])));
        assert_eq!(
            parse_json_array(r#"["\u00e9\n\"\\\/", "\ud83d\ude00"]"#),
            Ok(strs(&["é\n\"\\/", "😀"]))
        );
        assert_eq!(parse_json_array(r#"["\ud800x"]"#), Ok(strs(&["\u{fffd}x"])));
        assert_eq!(parse_json_array("[\"a\"]\n"), Ok(strs(&["a"])));
    }

    #[test]
    fn syntax_errors_mean_shell_form() {
        for text in [
            "echo [a]",
            "[a]",
            "['a']",
            r#"["a",]"#,
            r#"["a" "b"]"#,
            r#"["a"] # comment"#,
            r#"["a"#,
            r#"["a\x"]"#,
            "[\"a\tb\"]",
            "[1e999, \"a\"]",
            "[01]",
            "[-]",
            "[1.]",
            "[tru]",
            r#"[{"a" 1}]"#,
            r#"[{"a": 1,}]"#,
            "[,]",
        ] {
            assert_eq!(parse_json_array(text), Ok(None), "{text}");
        }
    }

    #[test]
    fn non_strings_are_an_error() {
        for text in [
            "[1]",
            r#"["a", 2]"#,
            "[null]",
            "[true, false]",
            r#"[["a"]]"#,
            r#"[{"a": [1, {"b": null}]}]"#,
            "[-0.5e+3]",
        ] {
            assert_eq!(parse_json_array(text), Err(NOT_STRINGS), "{text}");
        }
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(parse_json_array(&deep), Err(NOT_STRINGS));
        let too_deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
        assert_eq!(parse_json_array(&too_deep), Ok(None));
        assert_eq!(parse_json_array(&"[".repeat(100_000)), Ok(None));
    }
}
