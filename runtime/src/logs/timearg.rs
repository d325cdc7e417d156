//! `--since` / `--until` values, as the docker CLI accepts them.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::LogError;

/// Parses a `--since`/`--until` value the way the docker CLI does
/// (`GetTimestamp` in Docker's `api/types/time`):
///
/// * a Go duration, subtracted from `now`: `"10m"`, `"1h30m"`, `"1.5h"`, `"300ms"`,
///   `"-5m"` (units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`); `"0"` is not a duration but
///   the Unix time 0, as in Docker;
/// * a Unix timestamp with an optional fraction: `"1700000000"`, `"1700000000.5"`,
///   `"1700000000.000000001"` (what the CLI sends to the Engine API);
/// * an RFC 3339 date/time: `"2026-11-22"`, `"2026-11-22T04"`, `"2026-11-22T04:38"`,
///   `"2026-11-22T04:38:40"`, with an optional fraction, each with an optional zone `Z` or
///   `±hh:mm`. Without a zone it is in `now`'s offset (the CLI uses local time).
///
/// Unlike the CLI, which truncates durations to whole seconds, a duration keeps
/// `now`'s full precision.
pub fn parse_time_arg(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, LogError> {
    let value = s.trim();
    if value.is_empty() {
        return Err(LogError::Empty);
    }
    if value != "0"
        && let Some(nanos) = parse_go_duration(value)
    {
        let nanos = nanos.ok_or_else(|| LogError::OutOfRange(value.to_owned()))?;
        return now
            .checked_sub(time::Duration::nanoseconds(nanos))
            .ok_or_else(|| LogError::OutOfRange(value.to_owned()));
    }
    if let Some((secs, nanos)) = parse_unix(value) {
        let secs = secs.ok_or_else(|| LogError::OutOfRange(value.to_owned()))?;
        return OffsetDateTime::from_unix_timestamp(secs)
            .map(|t| t + time::Duration::nanoseconds(nanos))
            .map_err(|_| LogError::OutOfRange(value.to_owned()));
    }
    if value.contains('-') {
        return parse_rfc3339ish(value, now.offset()).map_err(|reason| LogError::InvalidTimestamp {
            value: value.to_owned(),
            reason,
        });
    }
    Err(LogError::Unrecognized(value.to_owned()))
}

/// `Some(None)` means the syntax is a duration but it overflows (as Go, ±292 years).
/// `None` means it is not a duration.
fn parse_go_duration(s: &str) -> Option<Option<i64>> {
    let (negative, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(Some(0));
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    let mut overflow = false;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after) = rest.strip_prefix('.') {
            let frac_len = after.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after[..frac_len];
            rest = &after[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None; // no number
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None, // missing or unknown unit
        };
        rest = &rest[unit_len..];
        // Integer part, saturating: anything that large overflows anyway.
        let int: i128 = int_part.bytes().fold(0i128, |acc, d| {
            (acc * 10 + i128::from(d - b'0')).min(i128::from(u64::MAX))
        });
        let mut value = int * unit;
        // Fraction: digits beyond what can matter are dropped (Go does the same).
        let frac_digits = &frac_part[..frac_part.len().min(18)];
        if !frac_digits.is_empty() {
            let frac: i128 = frac_digits.bytes().fold(0, |acc, d| acc * 10 + i128::from(d - b'0'));
            value += frac * unit / 10i128.pow(frac_digits.len() as u32);
        }
        total += value;
        if total > i128::from(i64::MAX) + 1 {
            overflow = true;
            total = i128::from(i64::MAX) + 1;
        }
    }
    let total = if negative { -total } else { total };
    if overflow {
        return Some(None);
    }
    Some(i64::try_from(total).ok())
}

/// `digits[.digits]`: `Some((None, _))` if the seconds overflow.
fn parse_unix(s: &str) -> Option<(Option<i64>, i64)> {
    let (secs, frac) = match s.split_once('.') {
        Some((secs, frac)) => (secs, Some(frac)),
        None => (s, None),
    };
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = match frac {
        None => 0,
        Some(frac) => {
            if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let digits = &frac[..frac.len().min(9)];
            let n: i64 = digits.parse().ok()?;
            n * 10i64.pow(9 - digits.len() as u32)
        }
    };
    Some((secs.parse::<i64>().ok(), nanos))
}

/// `YYYY-MM-DD[(T|t)HH[:MM[:SS[.frac]]]][Z|z|±hh:mm]`.
fn parse_rfc3339ish(s: &str, local: UtcOffset) -> Result<OffsetDateTime, String> {
    let mut p = Cursor { s: s.as_bytes(), at: 0 };
    let year = p.digits(4, "year")?;
    p.expect(b'-')?;
    let month = p.digits(2, "month")?;
    p.expect(b'-')?;
    let day = p.digits(2, "day")?;
    let (mut hour, mut minute, mut second, mut nanos) = (0, 0, 0, 0);
    if p.eat(b'T') || p.eat(b't') {
        hour = p.digits(2, "hour")?;
        if p.eat(b':') {
            minute = p.digits(2, "minute")?;
            if p.eat(b':') {
                second = p.digits(2, "second")?;
                if p.eat(b'.') || p.eat(b',') {
                    let start = p.at;
                    while p.peek().is_some_and(|b| b.is_ascii_digit()) {
                        p.at += 1;
                    }
                    let frac = &s[start..p.at];
                    if frac.is_empty() {
                        return Err("missing digits after the decimal point".into());
                    }
                    let digits = &frac[..frac.len().min(9)];
                    nanos = digits.parse::<u32>().map_err(|e| e.to_string())? * 10u32.pow(9 - digits.len() as u32);
                }
            }
        }
    }
    let offset = match p.peek() {
        None => local,
        Some(b'Z' | b'z') => {
            p.at += 1;
            UtcOffset::UTC
        }
        Some(sign @ (b'+' | b'-')) => {
            p.at += 1;
            let h = p.digits(2, "zone hour")? as i8;
            p.expect(b':')?;
            let m = p.digits(2, "zone minute")? as i8;
            let (h, m) = if sign == b'-' { (-h, -m) } else { (h, m) };
            UtcOffset::from_hms(h, m, 0).map_err(|e| e.to_string())?
        }
        Some(other) => return Err(format!("unexpected {:?}", char::from(other))),
    };
    if p.at != s.len() {
        return Err(format!("unexpected {:?} at the end", &s[p.at..]));
    }
    let month = Month::try_from(month as u8).map_err(|e| e.to_string())?;
    let date = Date::from_calendar_date(year as i32, month, day as u8).map_err(|e| e.to_string())?;
    let time = Time::from_hms_nano(hour as u8, minute as u8, second as u8, nanos).map_err(|e| e.to_string())?;
    Ok(PrimitiveDateTime::new(date, time)
        .assume_offset(offset)
        .to_offset(UtcOffset::UTC))
}

struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", char::from(b), self.at))
        }
    }

    fn digits(&mut self, n: usize, what: &str) -> Result<u32, String> {
        let Some(d) = self
            .s
            .get(self.at..self.at + n)
            .filter(|d| d.iter().all(u8::is_ascii_digit))
        else {
            return Err(format!("expected {n} digits for the {what} at byte {}", self.at));
        };
        self.at += n;
        Ok(d.iter().fold(0, |acc, &b| acc * 10 + u32::from(b - b'0')))
    }
}
