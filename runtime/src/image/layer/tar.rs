//! The tar format, as far as layers need it: parsing 512-byte headers and PAX records the
//! way Go's `archive/tar` does (Docker and containerd read layers with it, so reading
//! differently would let a layer show one thing to them and another to us), and writing
//! ustar headers with PAX extensions.

pub(super) const BLOCK: usize = 512;
/// Cap on the body of a PAX or GNU long-name header, as in Go (`maxSpecialFileSize`).
pub(super) const MAX_META: u64 = 1 << 20;

pub(super) const REGULAR: u8 = b'0';
pub(super) const REGULAR_OLD: u8 = 0;
pub(super) const HARDLINK: u8 = b'1';
pub(super) const SYMLINK: u8 = b'2';
pub(super) const CHAR: u8 = b'3';
pub(super) const BLOCKDEV: u8 = b'4';
pub(super) const DIR: u8 = b'5';
pub(super) const FIFO: u8 = b'6';
pub(super) const PAX_LOCAL: u8 = b'x';
pub(super) const PAX_GLOBAL: u8 = b'g';
pub(super) const GNU_LONGNAME: u8 = b'L';
pub(super) const GNU_LONGLINK: u8 = b'K';
pub(super) const GNU_SPARSE: u8 = b'S';

/// A parsed header block (before PAX and GNU long names are applied).
#[derive(Debug, Clone)]
pub(super) struct Header {
    pub typeflag: u8,
    pub name: Vec<u8>,
    pub link: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub devmajor: u64,
    pub devminor: u64,
}

impl Header {
    /// Types whose data is always empty, whatever the size field says (Go's
    /// `isHeaderOnlyType`).
    pub fn header_only(typeflag: u8) -> bool {
        matches!(typeflag, HARDLINK | SYMLINK | CHAR | BLOCKDEV | DIR | FIFO)
    }
}

pub(super) fn is_zero(block: &[u8; BLOCK]) -> bool {
    block.iter().all(|&b| b == 0)
}

/// Parses one header block; the error is the reason it is malformed.
pub(super) fn parse_header(b: &[u8; BLOCK]) -> Result<Header, String> {
    // The checksum covers the block with its own field read as spaces; some old tars sum
    // signed bytes, which Go accepts too.
    let stored = parse_octal(&b[148..156]).map_err(|e| format!("checksum field: {e}"))?;
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &byte) in b.iter().enumerate() {
        let byte = if (148..156).contains(&i) { b' ' } else { byte };
        unsigned += byte as i64;
        signed += byte as i8 as i64;
    }
    if stored != unsigned && stored != signed {
        return Err("header checksum mismatch (not a tar, or corrupt)".into());
    }
    let magic = &b[257..263];
    let version = &b[263..265];
    let ustar = magic == b"ustar\0" && version == b"00";
    let star = ustar && &b[508..512] == b"tar\0";
    let gnu = magic == b"ustar " && version == b" \0";

    let mut name = cstr(&b[0..100]).to_vec();
    if ustar {
        let prefix = if star { cstr(&b[345..476]) } else { cstr(&b[345..500]) };
        if !prefix.is_empty() {
            let mut full = prefix.to_vec();
            full.push(b'/');
            full.extend_from_slice(&name);
            name = full;
        }
    }
    let field = |range: std::ops::Range<usize>, what: &str| -> Result<i64, String> {
        parse_numeric(&b[range]).map_err(|e| format!("{what} field: {e}"))
    };
    let nonneg =
        |v: i64, what: &str| -> Result<u64, String> { u64::try_from(v).map_err(|_| format!("negative {what}")) };
    let (devmajor, devminor) = if ustar || gnu {
        (
            nonneg(field(329..337, "devmajor")?, "devmajor")?,
            nonneg(field(337..345, "devminor")?, "devminor")?,
        )
    } else {
        (0, 0)
    };
    Ok(Header {
        typeflag: b[156],
        name,
        link: cstr(&b[157..257]).to_vec(),
        mode: (field(100..108, "mode")? & 0o7777) as u32,
        uid: nonneg(field(108..116, "uid")?, "uid")?,
        gid: nonneg(field(116..124, "gid")?, "gid")?,
        size: nonneg(field(124..136, "size")?, "size")?,
        mtime: field(136..148, "mtime")?,
        devmajor,
        devminor,
    })
}

/// The bytes of a NUL-terminated field.
fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(n) => &field[..n],
        None => field,
    }
}

/// A numeric field: octal text, or GNU base-256 (high bit set, two's complement).
fn parse_numeric(field: &[u8]) -> Result<i64, String> {
    if let Some(&first) = field.first()
        && first & 0x80 != 0
    {
        let inv: u8 = if first & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &c) in field.iter().enumerate() {
            let mut c = c ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 != 0 {
                return Err("base-256 number overflows".into());
            }
            x = (x << 8) | c as u64;
        }
        if x >> 63 != 0 {
            return Err("base-256 number overflows".into());
        }
        return Ok(if inv == 0xff { !(x as i64) } else { x as i64 });
    }
    parse_octal(field)
}

fn parse_octal(field: &[u8]) -> Result<i64, String> {
    let start = field.iter().position(|&b| b != b' ' && b != 0).unwrap_or(field.len());
    let end = field
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(start, |i| i + 1);
    let digits = &field[start..end];
    let mut x: i64 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return Err(format!("not an octal number: {:?}", String::from_utf8_lossy(digits)));
        }
        x = x
            .checked_mul(8)
            .and_then(|x| x.checked_add((d - b'0') as i64))
            .ok_or("octal number overflows")?;
    }
    Ok(x)
}

/// The records of a PAX extended header that matter to layers.
#[derive(Debug, Default, Clone)]
pub(super) struct Pax {
    pub path: Option<Vec<u8>>,
    pub linkpath: Option<Vec<u8>>,
    pub size: Option<u64>,
    pub uid: Option<u64>,
    pub gid: Option<u64>,
    pub mtime: Option<(i64, u32)>,
    /// `SCHILY.xattr.<name>` records, in the order given (a repeated name: last wins).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// A `GNU.sparse.*` record was present.
    pub sparse: bool,
}

/// Parses PAX records: `"<len> <key>=<value>\n"`, `<len>` counting the whole record.
pub(super) fn parse_pax(mut data: &[u8]) -> Result<Pax, String> {
    let mut pax = Pax::default();
    // A header padded with NULs after its records is accepted, as Go does.
    while !data.is_empty() && data[0] != 0 {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("PAX record without a length")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("PAX record with a bad length")?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err("PAX record length does not match its content".into());
        }
        let record = &data[sp + 1..len - 1];
        data = &data[len..];
        let eq = record.iter().position(|&b| b == b'=').ok_or("PAX record without '='")?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        if key.is_empty() {
            return Err("PAX record with an empty key".into());
        }
        let number = |what: &str| -> Result<u64, String> {
            std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("PAX {what} is not a number"))
        };
        // An empty value deletes the record, i.e. leaves the header's value.
        match key {
            b"path" | b"linkpath" if value.contains(&0) => return Err("PAX path with a NUL byte".into()),
            b"path" => pax.path = (!value.is_empty()).then(|| value.to_vec()),
            b"linkpath" => pax.linkpath = (!value.is_empty()).then(|| value.to_vec()),
            _ if value.is_empty() => {}
            b"size" => pax.size = Some(number("size")?),
            b"uid" => pax.uid = Some(number("uid")?),
            b"gid" => pax.gid = Some(number("gid")?),
            b"mtime" => pax.mtime = Some(parse_pax_time(value).ok_or("PAX mtime is not a time")?),
            _ if key.starts_with(b"SCHILY.xattr.") => {
                let name = &key[b"SCHILY.xattr.".len()..];
                if name.is_empty() || name.contains(&0) {
                    return Err("PAX xattr with a bad name".into());
                }
                pax.xattrs.retain(|(n, _)| n != name);
                pax.xattrs.push((name.to_vec(), value.to_vec()));
            }
            _ if key.starts_with(b"GNU.sparse.") => pax.sparse = true,
            _ => {}
        }
    }
    Ok(pax)
}

/// `"1700000000.123456789"` or `"-12.5"` into seconds and nanoseconds (floored).
fn parse_pax_time(value: &[u8]) -> Option<(i64, u32)> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += (d - b'0') as u32 * 10u32.pow(8 - i as u32);
    }
    if !negative {
        Some((secs, nanos))
    } else if nanos == 0 {
        Some((-secs, 0))
    } else {
        Some((-secs - 1, 1_000_000_000 - nanos))
    }
}

// ---------------------------------------------------------------------------- writing

/// What one tar entry says, for writing.
pub(super) struct Entry<'a> {
    pub typeflag: u8,
    pub name: &'a [u8],
    pub link: &'a [u8],
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub devmajor: u64,
    pub devminor: u64,
    /// Sorted by name.
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

const MAX_OCTAL_8: u64 = (1 << 21) - 1;
const MAX_OCTAL_12: u64 = (1 << 33) - 1;

/// Appends the header block(s) of `e` to `out`: a PAX header first when a value does not
/// fit the ustar fields, then the ustar header. Data and padding are the caller's.
pub(super) fn write_header(out: &mut Vec<u8>, e: &Entry<'_>) {
    let mut records: Vec<u8> = Vec::new();
    let long_name = e.name.len() > 100;
    let long_link = e.link.len() > 100;
    if long_name {
        pax_record(&mut records, b"path", e.name);
    }
    if long_link {
        pax_record(&mut records, b"linkpath", e.link);
    }
    if e.size > MAX_OCTAL_12 {
        pax_record(&mut records, b"size", e.size.to_string().as_bytes());
    }
    if e.uid > MAX_OCTAL_8 {
        pax_record(&mut records, b"uid", e.uid.to_string().as_bytes());
    }
    if e.gid > MAX_OCTAL_8 {
        pax_record(&mut records, b"gid", e.gid.to_string().as_bytes());
    }
    let mtime_fits = (0..=MAX_OCTAL_12 as i64).contains(&e.mtime);
    if !mtime_fits {
        pax_record(&mut records, b"mtime", e.mtime.to_string().as_bytes());
    }
    for (name, value) in e.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        pax_record(&mut records, &key, value);
    }
    if !records.is_empty() {
        // Named as Go names them: "<dir>/PaxHeaders.0/<base>", cut to the field.
        let trimmed = e.name.strip_suffix(b"/").unwrap_or(e.name);
        let base_at = trimmed.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        let mut pax_name = trimmed[..base_at].to_vec();
        pax_name.extend_from_slice(b"PaxHeaders.0/");
        pax_name.extend_from_slice(&trimmed[base_at..]);
        let pax = Entry {
            typeflag: PAX_LOCAL,
            name: &pax_name,
            link: b"",
            mode: 0,
            uid: 0,
            gid: 0,
            size: records.len() as u64,
            mtime: 0,
            devmajor: 0,
            devminor: 0,
            xattrs: &[],
        };
        ustar_block(out, &pax);
        out.extend_from_slice(&records);
        pad(out, records.len() as u64);
    }
    let fitted = Entry {
        size: if e.size > MAX_OCTAL_12 { 0 } else { e.size },
        uid: if e.uid > MAX_OCTAL_8 { 0 } else { e.uid },
        gid: if e.gid > MAX_OCTAL_8 { 0 } else { e.gid },
        mtime: if mtime_fits { e.mtime } else { 0 },
        ..*e
    };
    ustar_block(out, &fitted);
}

/// Zero bytes up to the next block boundary after `len` bytes of data.
pub(super) fn pad(out: &mut Vec<u8>, len: u64) {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

pub(super) fn padding(len: u64) -> u64 {
    (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64
}

fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    // The length counts its own digits: find the fixed point.
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// One ustar block; values must fit (names are cut to their field, the PAX header having
/// the full ones).
fn ustar_block(out: &mut Vec<u8>, e: &Entry<'_>) {
    let mut b = [0u8; BLOCK];
    put(&mut b[0..100], e.name);
    octal(&mut b[100..108], e.mode as u64);
    octal(&mut b[108..116], e.uid);
    octal(&mut b[116..124], e.gid);
    octal(&mut b[124..136], e.size);
    octal(&mut b[136..148], e.mtime as u64);
    b[156] = e.typeflag;
    put(&mut b[157..257], e.link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    octal(&mut b[329..337], e.devmajor.min(MAX_OCTAL_8));
    octal(&mut b[337..345], e.devminor.min(MAX_OCTAL_8));
    b[148..156].fill(b' ');
    let sum: u64 = b.iter().map(|&x| x as u64).sum();
    // Six digits, NUL, and the space already there.
    octal(&mut b[148..155], sum);
    out.extend_from_slice(&b);
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Zero-padded octal digits filling all but the last byte, which stays NUL.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let mut v = value;
    for i in (0..digits).rev() {
        field[i] = b'0' + (v & 7) as u8;
        v >>= 3;
    }
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_octal_and_base256() {
        assert_eq!(parse_numeric(b"0000644\0").unwrap(), 0o644);
        assert_eq!(parse_numeric(b"  644 \0").unwrap(), 0o644);
        assert_eq!(parse_numeric(b"\0\0\0\0").unwrap(), 0);
        assert!(parse_numeric(b"12a4").is_err());
        let mut b = [0u8; 12];
        b[0] = 0x80;
        b[8..].copy_from_slice(&[0x01, 0x02, 0x03, 0x04]);
        assert_eq!(parse_numeric(&b).unwrap(), 0x01020304);
        let neg = [0xffu8; 12];
        assert_eq!(parse_numeric(&neg).unwrap(), -1);
    }

    #[test]
    fn pax_records_round_trip() {
        let mut r = Vec::new();
        pax_record(&mut r, b"path", &[b'a'; 300]);
        pax_record(&mut r, b"SCHILY.xattr.user.x", b"\x00\x01bin\n");
        pax_record(&mut r, b"mtime", b"-1.5");
        let pax = parse_pax(&r).unwrap();
        assert_eq!(pax.path.unwrap().len(), 300);
        assert_eq!(pax.xattrs, vec![(b"user.x".to_vec(), b"\x00\x01bin\n".to_vec())]);
        assert_eq!(pax.mtime, Some((-2, 500_000_000)));
        // A length of 9 vs 10 digits: the record length counts itself.
        for n in [1usize, 90, 95, 96, 97, 98, 99, 100, 990, 995, 996, 997] {
            let mut r = Vec::new();
            pax_record(&mut r, b"k", &vec![b'v'; n]);
            assert!(parse_pax(&r).is_ok(), "value of {n} bytes");
        }
        assert!(parse_pax(b"99 path=x\n").is_err());
        assert!(parse_pax(b"9 path=x\n").is_ok());
    }

    #[test]
    fn headers_written_are_read_back_by_us_and_by_the_tar_crate() {
        let name = vec![b'n'; 150];
        let xattrs = vec![(b"user.k".to_vec(), b"v".to_vec())];
        let e = Entry {
            typeflag: REGULAR,
            name: &name,
            link: b"",
            mode: 0o4755,
            uid: 5_000_000,
            gid: 7,
            size: 3,
            mtime: 1_700_000_000,
            devmajor: 0,
            devminor: 0,
            xattrs: &xattrs,
        };
        let mut out = Vec::new();
        write_header(&mut out, &e);
        out.extend_from_slice(b"abc");
        pad(&mut out, 3);
        out.extend_from_slice(&[0; 1024]);
        let mut archive = ::tar::Archive::new(&out[..]);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path_bytes().len(), 150);
        assert_eq!(entry.header().mode().unwrap(), 0o4755);
        assert_eq!(entry.header().uid().unwrap(), 5_000_000);
        let ext: Vec<_> = entry
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|r| r.unwrap().key().unwrap().to_string())
            .collect();
        assert!(ext.contains(&"SCHILY.xattr.user.k".to_string()));
        let mut data = String::new();
        std::io::Read::read_to_string(&mut entry, &mut data).unwrap();
        assert_eq!(data, "abc");

        let first: &[u8; BLOCK] = out[..BLOCK].try_into().unwrap();
        let pax = parse_header(first).unwrap();
        assert_eq!(pax.typeflag, PAX_LOCAL);
        let at = BLOCK + (pax.size + padding(pax.size)) as usize;
        let h = parse_header(out[at..at + BLOCK].try_into().unwrap()).unwrap();
        assert_eq!((h.mode, h.size, h.mtime), (0o4755, 3, 1_700_000_000));
    }
}
