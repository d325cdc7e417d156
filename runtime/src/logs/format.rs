//! One log line: encoding (writer side) and decoding (reader side), base64, time format.

use std::borrow::Cow;
use std::io::Write as _;

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::{LogEntry, Stream};

/// Appends one JSON line (with its `"\n"`) for an entry to `out`.
pub(super) fn encode_entry(out: &mut Vec<u8>, stream: Stream, bytes: &[u8], time: OffsetDateTime) {
    let text = std::str::from_utf8(bytes);
    out.extend_from_slice(b"{\"log\":");
    match text {
        Ok(s) => write_json_string(out, s),
        Err(_) => write_json_string(out, &String::from_utf8_lossy(bytes)),
    }
    out.extend_from_slice(b",\"stream\":\"");
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    format_time(out, time);
    out.push(b'"');
    if text.is_err() {
        out.extend_from_slice(b",\"log_base64\":\"");
        base64_encode(out, bytes);
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

fn write_json_string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("serializing a str into a Vec cannot fail");
}

/// `2026-11-22T04:38:40.335804123Z`: UTC, always nine fractional digits.
pub(super) fn format_time(out: &mut Vec<u8>, time: OffsetDateTime) {
    let t = time.to_offset(UtcOffset::UTC);
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
    .expect("writing into a Vec cannot fail");
}

#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow, default)]
    log_base64: Option<Cow<'a, str>>,
}

/// Parses one line (without its `"\n"`). `None` for an empty line or one that is not a
/// log entry (a torn line left by a crash, say).
pub(super) fn decode_entry(line: &[u8]) -> Option<LogEntry> {
    if line.is_empty() {
        return None;
    }
    let raw: RawLine<'_> = match serde_json::from_slice(line) {
        Ok(raw) => raw,
        Err(err) => {
            tracing::debug!(%err, "skipping a log line that does not parse");
            return None;
        }
    };
    let stream = match &*raw.stream {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        other => {
            tracing::debug!(stream = other, "skipping a log line with an unknown stream");
            return None;
        }
    };
    let time = match OffsetDateTime::parse(&raw.time, &Rfc3339) {
        Ok(t) => t.to_offset(UtcOffset::UTC),
        Err(err) => {
            tracing::debug!(%err, "skipping a log line with a bad time");
            return None;
        }
    };
    let bytes = match raw.log_base64 {
        Some(b64) => match base64_decode(b64.as_bytes()) {
            Some(bytes) => bytes,
            None => {
                tracing::debug!("bad log_base64 field, using the text");
                raw.log.into_owned().into_bytes()
            }
        },
        None => raw.log.into_owned().into_bytes(),
    };
    let partial = !bytes.ends_with(b"\n");
    Some(LogEntry {
        time,
        stream,
        bytes,
        partial,
    })
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648 §4) with padding.
pub(super) fn base64_encode(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len().div_ceil(3) * 4);
    let mut chunks = bytes.chunks_exact(3);
    for c in &mut chunks {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        out.extend_from_slice(&[
            B64[(n >> 18) as usize & 63],
            B64[(n >> 12) as usize & 63],
            B64[(n >> 6) as usize & 63],
            B64[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[B64[(n >> 18) as usize & 63], B64[(n >> 12) as usize & 63], b'=', b'=']);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.extend_from_slice(&[
                B64[(n >> 18) as usize & 63],
                B64[(n >> 12) as usize & 63],
                B64[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

/// Decodes standard base64 with padding; `None` if malformed.
pub(super) fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let groups = text.len() / 4;
    for (i, g) in text.chunks_exact(4).enumerate() {
        let last = i + 1 == groups;
        let pad = if last {
            g.iter().rev().take_while(|&&c| c == b'=').count()
        } else {
            0
        };
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &g[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}
