//! Repairs double-encoded UTF-8 ("mojibake"): text that was UTF-8, read as Windows-1252 (or
//! Latin-1) and saved again as UTF-8, so that `’` reads `â€™` and `ü` reads `Ã¼`.
//!
//! A run of characters is replaced only when their single-byte codes form one valid
//! multi-byte UTF-8 character. That is lossless: the damage can be redone exactly from the
//! repair, and genuine text such as `für` or `naïve` (whose codes are no valid UTF-8
//! sequence) is left alone.

use std::collections::HashMap;
use std::sync::LazyLock;

/// Each character that Windows-1252 or Latin-1 decodes from a byte, and that byte.
static BYTE_OF: LazyLock<HashMap<char, u8>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for b in 0x80u8..=0xFF {
        let byte = [b];
        let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(&byte);
        if let Some(c) = text.chars().next() {
            map.insert(c, b);
        }
        // Latin-1 reads 0x80..0x9F as C1 controls; accept those too.
        map.entry(char::from(b)).or_insert(b);
    }
    map
});

/// One kind of repair and where it was first seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Repair {
    pub from: String,
    pub to: String,
    pub count: usize,
    pub first_line: usize,
}

fn sequence_len(lead: u8) -> Option<usize> {
    match lead {
        0xC2..=0xDF => Some(2),
        0xE0..=0xEF => Some(3),
        0xF0..=0xF4 => Some(4),
        _ => None,
    }
}

/// One pass over the text.
fn pass(text: &str, repairs: &mut Vec<Repair>) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
        }
        let repaired = BYTE_OF.get(&c).and_then(|&lead| {
            let n = sequence_len(lead)?;
            if i + n > chars.len() {
                return None;
            }
            let mut bytes = vec![lead];
            for &next in &chars[i + 1..i + n] {
                let b = *BYTE_OF.get(&next)?;
                if !(0x80..=0xBF).contains(&b) {
                    return None;
                }
                bytes.push(b);
            }
            let s = std::str::from_utf8(&bytes).ok()?;
            let d = s.chars().next()?;
            // A control character as the result means the input was not mojibake.
            (!d.is_control()).then_some((d, n))
        });
        match repaired {
            Some((d, n)) => {
                let from: String = chars[i..i + n].iter().collect();
                let to = d.to_string();
                match repairs.iter_mut().find(|r| r.from == from && r.to == to) {
                    Some(r) => r.count += 1,
                    None => repairs.push(Repair {
                        from,
                        to,
                        count: 1,
                        first_line: line,
                    }),
                }
                out.push(d);
                changed = true;
                i += n;
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

/// Repairs the text, undoing up to three layers of double encoding.
pub fn repair(text: &str) -> (String, Vec<Repair>) {
    let mut repairs = Vec::new();
    let mut current = text.to_string();
    for _ in 0..3 {
        match pass(&current, &mut repairs) {
            Some(next) => current = next,
            None => break,
        }
    }
    (current, repairs)
}

/// Sequences that still look like mojibake (for the report and the tests).
pub fn suspicious(text: &str) -> Vec<(usize, String)> {
    const MARKERS: &[&str] = &["â€", "Ã©", "Ã¨", "Ã¼", "Ã¶", "Ã¤", "Ã\u{a0}", "ðŸ", "Â ", "â”", "Ã±"];
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for m in MARKERS {
            if line.contains(m) {
                found.push((n + 1, (*m).to_string()));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_common_mojibake() {
        let (fixed, repairs) = repair("Itâ€™s Schwarzmà¼ller? no: SchwarzmÃ¼ller ðŸš€ â”œâ”€â”€ src");
        assert_eq!(fixed, "It’s Schwarzmà¼ller? no: Schwarzmüller 🚀 ├── src");
        assert!(repairs.iter().any(|r| r.from == "â€™" && r.to == "’"));
        assert!(suspicious(&fixed).is_empty());
    }

    #[test]
    fn leaves_genuine_text_alone() {
        for text in ["für naïve café", "Ångström ©2024 — “quotes”", "plain ascii"] {
            let (fixed, repairs) = repair(text);
            assert_eq!(fixed, text);
            assert!(repairs.is_empty());
        }
    }

    #[test]
    fn undoes_double_layers() {
        // "’" encoded twice over.
        let twice = "Ã¢â‚¬â„¢";
        assert_eq!(repair(twice).0, "’");
    }
}
