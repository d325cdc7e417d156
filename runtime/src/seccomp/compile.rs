//! OCI seccomp spec → classic BPF, through libseccomp.
//!
//! libseccomp builds the filter; we export it as raw `sock_filter` instructions
//! (`seccomp_export_bpf`) and keep them, so that loading is a single `seccomp(2)` call
//! in the forked child, with no library call, allocation or lock.
//!
//! On top of libseccomp's program we prepend a short "ENOSYS stub", as runc does: a
//! syscall whose number is higher than every syscall the spec names (for that
//! architecture) gets `ENOSYS` rather than the default action. Such a syscall is newer
//! than the profile (or than the libseccomp that compiled it), and `ENOSYS` makes libc
//! fall back to an older syscall where `EPERM` would make it fail.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{FromRawFd, OwnedFd};

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};

use super::SeccompError;

/// The kernel's limit on a classic BPF program (`BPF_MAXINSNS`).
pub(crate) const MAX_INSTRUCTIONS: usize = 4096;

/// A compiled program: instructions plus the `seccomp(2)` flags to load it with.
pub(crate) struct Compiled {
    pub(crate) program: Vec<libc::sock_filter>,
    pub(crate) flags: u32,
}

/// Compiles `spec` (see [`super::compile`] for the accepted subset).
pub(crate) fn compile_spec(spec: &LinuxSeccomp) -> Result<Compiled, SeccompError> {
    let flags = filter_flags(spec.flags().as_deref().unwrap_or_default())?;
    let default = action(spec.default_action(), spec.default_errno_ret(), "defaultAction")?;

    let mut ctx = ScmpFilterContext::new(default).map_err(|source| SeccompError::Libseccomp {
        context: "creating the filter context".into(),
        source,
    })?;

    let mut arches = vec![ScmpArch::native()];
    for &arch in spec.architectures().as_deref().unwrap_or_default() {
        let Some(scmp) = scmp_arch(arch) else {
            return Err(SeccompError::BadArch {
                arch,
                reason: "libseccomp has no such architecture".into(),
            });
        };
        if arches.contains(&scmp) {
            continue;
        }
        ctx.add_arch(scmp).map_err(|source| SeccompError::BadArch {
            arch,
            reason: format!("libseccomp {}: {source}", libseccomp_version()),
        })?;
        arches.push(scmp);
    }

    // The highest syscall number the spec names, per architecture (for the ENOSYS stub).
    let mut highest: HashMap<ScmpArch, u32> = HashMap::new();

    for (i, rule) in spec.syscalls().as_deref().unwrap_or_default().iter().enumerate() {
        let what = format!("syscalls[{i}]");
        let act = action(rule.action(), rule.errno_ret(), &what)?;

        let mut conditions = Vec::new();
        let mut indices = Vec::new();
        for arg in rule.args().as_deref().unwrap_or_default() {
            if arg.index() > 5 {
                return Err(SeccompError::InvalidArgIndex {
                    rule: i,
                    index: arg.index(),
                });
            }
            indices.push(arg.index());
            conditions.push(arg_compare(arg.index() as u32, arg.op(), arg.value(), arg.value_two()));
        }
        // libseccomp ANDs the comparisons of one rule, and refuses two comparisons of the
        // same argument. OCI runtimes then fall back to one rule per comparison (an OR).
        indices.sort_unstable();
        let same_arg_twice = indices.windows(2).any(|w| w[0] == w[1]);

        for name in rule.names() {
            for &arch in &arches {
                if let Ok(nr) = ScmpSyscall::from_name_by_arch(name, arch) {
                    let nr = i32::from(nr);
                    if nr >= 0 {
                        let entry = highest.entry(arch).or_insert(0);
                        *entry = (*entry).max(nr as u32);
                    }
                }
            }
            if act == default {
                // libseccomp refuses a rule that repeats the default action (EACCES);
                // the rule changes nothing anyway.
                continue;
            }
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                // Unknown to this libseccomp, or to this architecture: skipped, as runc does.
                tracing::debug!(syscall = %name, "seccomp: unknown syscall skipped");
                continue;
            };
            let result = if conditions.is_empty() {
                ctx.add_rule(act, syscall).map(|_| ())
            } else if same_arg_twice {
                conditions
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, syscall, &[*c]).map(|_| ()))
            } else {
                ctx.add_rule_conditional(act, syscall, &conditions).map(|_| ())
            };
            result.map_err(|source| SeccompError::Libseccomp {
                context: format!("adding {what} ({name}, {})", rule.action()),
                source,
            })?;
        }
    }

    let mut program = export(&ctx)?;
    if wants_enosys_stub(default) {
        let stub = enosys_stub(&arches, &highest);
        if !stub.is_empty() {
            program.splice(0..0, stub);
        }
    }
    if program.len() > MAX_INSTRUCTIONS {
        return Err(SeccompError::TooLarge(program.len()));
    }
    Ok(Compiled { program, flags })
}

pub(crate) fn libseccomp_version() -> String {
    match libseccomp::ScmpVersion::current() {
        Ok(v) => format!("{}.{}.{}", v.major, v.minor, v.micro),
        Err(_) => "(unknown version)".into(),
    }
}

fn filter_flags(flags: &[LinuxSeccompFilterFlag]) -> Result<u32, SeccompError> {
    let mut bits = 0u32;
    for flag in flags {
        bits |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            // Only valid together with a notification listener, which needs SCMP_ACT_NOTIFY.
            other => return Err(SeccompError::UnsupportedFlag(*other)),
        } as u32;
    }
    Ok(bits)
}

/// OCI action (+ errnoRet) → libseccomp action.
fn action(act: LinuxSeccompAction, errno_ret: Option<u32>, what: &str) -> Result<ScmpAction, SeccompError> {
    // With no errnoRet, ERRNO and TRACE return EPERM, as in runc and crun.
    let data = |value: Option<u32>| -> Result<u16, SeccompError> {
        let value = value.unwrap_or(libc::EPERM as u32);
        u16::try_from(value).map_err(|_| SeccompError::InvalidErrno {
            what: what.to_owned(),
            value,
        })
    };
    Ok(match act {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(data(errno_ret)?)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(data(errno_ret)?),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::UnsupportedAction {
                what: what.to_owned(),
                action: act,
                reason: "user-space notification needs a seccomp agent, which Slipway does not run",
            });
        }
    })
}

fn arg_compare(index: u32, op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> ScmpArgCompare {
    let op = match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // OCI: `value` is the mask, `valueTwo` what the masked argument must equal.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return ScmpArgCompare::new(index, ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0));
        }
    };
    ScmpArgCompare::new(index, op, value)
}

fn scmp_arch(arch: Arch) -> Option<ScmpArch> {
    Some(match arch {
        Arch::ScmpArchNative => ScmpArch::native(),
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    })
}

/// Writes libseccomp's BPF into a memfd and reads it back as instructions.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let io = |context: &str, source: std::io::Error| SeccompError::Io {
        context: context.to_owned(),
        source,
    };
    // SAFETY: a valid NUL-terminated name; the fd returned is ours to own.
    let fd = unsafe { libc::memfd_create(c"slipway-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io("memfd_create", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file).map_err(|source| SeccompError::Libseccomp {
        context: "exporting the BPF program".into(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| io("reading the exported BPF program", e))?;
    parse_instructions(&bytes).ok_or_else(|| {
        io(
            "reading the exported BPF program",
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} bytes is not a whole number of instructions", bytes.len()),
            ),
        )
    })
}

/// Raw `struct sock_filter` array (native byte order) → instructions.
pub(crate) fn parse_instructions(bytes: &[u8]) -> Option<Vec<libc::sock_filter>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// Instructions → raw `struct sock_filter` array (native byte order).
pub(crate) fn instruction_bytes(program: &[libc::sock_filter]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for ins in program {
        bytes.extend_from_slice(&ins.code.to_ne_bytes());
        bytes.push(ins.jt);
        bytes.push(ins.jf);
        bytes.extend_from_slice(&ins.k.to_ne_bytes());
    }
    bytes
}

// ---------------------------------------------------------------------------------------
// The ENOSYS stub.

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
/// x32 syscalls run under AUDIT_ARCH_X86_64 with this bit set in their number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// 32-bit ARM's private syscalls (`cacheflush`, `set_tls`, ...) start here.
const ARM_PRIVATE_BASE: u32 = 0x000F_0000;
/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

/// The stub only helps when unknown syscalls would be refused: with an allowing,
/// logging or tracing default it would *stop* syscalls the spec lets through.
fn wants_enosys_stub(default: ScmpAction) -> bool {
    match default {
        ScmpAction::Errno(e) => e != libc::ENOSYS,
        ScmpAction::KillThread | ScmpAction::KillProcess | ScmpAction::Trap => true,
        _ => false,
    }
}

/// A jump target while assembling the stub.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Next,
    Label(usize),
}

enum Ins {
    Load(u32),
    /// `if (A op k) goto jt else goto jf`, op being one of BPF_JEQ/JGT/JGE/JSET.
    Jump(u32, u32, Target, Target),
    Ret(u32),
    Label(usize),
}

const L_ENOSYS: usize = 0;
const L_FILTER: usize = 1;

/// Builds the stub for the architectures of the filter: per audit architecture, a
/// syscall number above the spec's highest one returns ENOSYS; everything else jumps
/// to libseccomp's program, which starts right after the stub.
fn enosys_stub(arches: &[ScmpArch], highest: &HashMap<ScmpArch, u32>) -> Vec<libc::sock_filter> {
    use Target::{Label, Next};
    let max = |arch: ScmpArch| highest.get(&arch).copied();
    let has = |arch: ScmpArch| arches.contains(&arch);
    let mut blocks: Vec<(u32, Vec<Ins>)> = Vec::new();
    let mut next_label = 2;
    let mut label = || {
        next_label += 1;
        next_label - 1
    };

    // x86_64 and x32 share an audit architecture; x32 numbers carry X32_SYSCALL_BIT.
    let x64 = if has(ScmpArch::X8664) {
        max(ScmpArch::X8664)
    } else {
        None
    };
    let x32 = if has(ScmpArch::X32) { max(ScmpArch::X32) } else { None };
    if x64.is_some() || x32.is_some() {
        let mut code = vec![Ins::Load(DATA_NR)];
        let (is_x32, is_x64) = (label(), label());
        code.push(Ins::Jump(libc::BPF_JSET, X32_SYSCALL_BIT, Label(is_x32), Label(is_x64)));
        code.push(Ins::Label(is_x32));
        match x32 {
            Some(m) => code.push(Ins::Jump(libc::BPF_JGT, m, Label(L_ENOSYS), Label(L_FILTER))),
            None => code.push(Ins::Jump(libc::BPF_JA, 0, Label(L_FILTER), Label(L_FILTER))),
        }
        code.push(Ins::Label(is_x64));
        match x64 {
            Some(m) => code.push(Ins::Jump(libc::BPF_JGT, m, Label(L_ENOSYS), Label(L_FILTER))),
            None => code.push(Ins::Jump(libc::BPF_JA, 0, Label(L_FILTER), Label(L_FILTER))),
        }
        blocks.push((AUDIT_ARCH_X86_64, code));
    }
    for (arch, audit) in [
        (ScmpArch::X86, AUDIT_ARCH_I386),
        (ScmpArch::Aarch64, AUDIT_ARCH_AARCH64),
        (ScmpArch::Arm, AUDIT_ARCH_ARM),
    ] {
        let Some(m) = max(arch).filter(|_| has(arch)) else {
            continue;
        };
        let mut code = vec![Ins::Load(DATA_NR)];
        if arch == ScmpArch::Arm {
            code.push(Ins::Jump(libc::BPF_JGE, ARM_PRIVATE_BASE, Label(L_FILTER), Next));
        }
        code.push(Ins::Jump(libc::BPF_JGT, m, Label(L_ENOSYS), Label(L_FILTER)));
        blocks.push((audit, code));
    }
    if blocks.is_empty() {
        return Vec::new();
    }

    // Dispatch on the architecture, then the blocks, then the ENOSYS return.
    let mut code = vec![Ins::Load(DATA_ARCH)];
    let block_labels: Vec<usize> = blocks.iter().map(|_| label()).collect();
    for ((audit, _), &l) in blocks.iter().zip(&block_labels) {
        code.push(Ins::Jump(libc::BPF_JEQ, *audit, Label(l), Next));
    }
    code.push(Ins::Jump(libc::BPF_JA, 0, Label(L_FILTER), Label(L_FILTER)));
    for ((_, block), l) in blocks.into_iter().zip(block_labels) {
        code.push(Ins::Label(l));
        code.extend(block);
    }
    code.push(Ins::Label(L_ENOSYS));
    code.push(Ins::Ret(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32));
    code.push(Ins::Label(L_FILTER));
    assemble(code)
}

/// Resolves labels into relative jumps. The stub is a few dozen instructions, so every
/// offset fits in the 8-bit `jt`/`jf` fields.
fn assemble(code: Vec<Ins>) -> Vec<libc::sock_filter> {
    let mut labels = HashMap::new();
    let mut pc = 0usize;
    for ins in &code {
        match ins {
            Ins::Label(l) => {
                labels.insert(*l, pc);
            }
            _ => pc += 1,
        }
    }
    let offset = |pc: usize, target: Target| -> u32 {
        match target {
            Target::Next => 0,
            Target::Label(l) => (labels[&l] - (pc + 1)) as u32,
        }
    };
    let mut out = Vec::with_capacity(pc);
    for ins in code {
        let pc = out.len();
        out.push(match ins {
            Ins::Label(_) => continue,
            Ins::Load(off) => libc::sock_filter {
                code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
                jt: 0,
                jf: 0,
                k: off,
            },
            Ins::Ret(k) => libc::sock_filter {
                code: (libc::BPF_RET | libc::BPF_K) as u16,
                jt: 0,
                jf: 0,
                k,
            },
            Ins::Jump(op, k, jt, jf) if op == libc::BPF_JA => {
                debug_assert!(jt == jf);
                libc::sock_filter {
                    code: (libc::BPF_JMP | libc::BPF_JA) as u16,
                    jt: 0,
                    jf: 0,
                    k: offset(pc, jt) + k,
                }
            }
            Ins::Jump(op, k, jt, jf) => {
                let (jt, jf) = (offset(pc, jt), offset(pc, jf));
                assert!(jt <= 255 && jf <= 255, "ENOSYS stub jump out of range");
                libc::sock_filter {
                    code: (libc::BPF_JMP | op | libc::BPF_K) as u16,
                    jt: jt as u8,
                    jf: jf as u8,
                    k,
                }
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the stub's instruction subset, to check its decisions
    /// without loading it.
    fn run(program: &[libc::sock_filter], arch: u32, nr: u32) -> Option<u32> {
        let mut pc = 0;
        let mut a = 0u32;
        while pc < program.len() {
            let ins = program[pc];
            let code = u32::from(ins.code);
            pc += 1;
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    a = if ins.k == DATA_ARCH { arch } else { nr };
                }
                c if c == libc::BPF_RET | libc::BPF_K => return Some(ins.k),
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += ins.k as usize,
                c => {
                    let taken = match c & 0xf0 {
                        x if x == libc::BPF_JEQ => a == ins.k,
                        x if x == libc::BPF_JGT => a > ins.k,
                        x if x == libc::BPF_JGE => a >= ins.k,
                        x if x == libc::BPF_JSET => a & ins.k != 0,
                        _ => panic!("unexpected instruction {code:#x}"),
                    };
                    pc += usize::from(if taken { ins.jt } else { ins.jf });
                }
            }
        }
        None // fell through into libseccomp's program
    }

    const ENOSYS: Option<u32> = Some(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);

    #[test]
    fn stub_returns_enosys_above_the_highest_known_syscall() {
        let arches = [ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32, ScmpArch::Arm];
        let highest = HashMap::from([
            (ScmpArch::X8664, 456),
            (ScmpArch::X86, 456),
            (ScmpArch::X32, 456 | X32_SYSCALL_BIT),
            (ScmpArch::Arm, 456),
        ]);
        let stub = enosys_stub(&arches, &highest);
        assert!(stub.len() < 30, "{}", stub.len());
        assert_eq!(run(&stub, AUDIT_ARCH_X86_64, 0), None);
        assert_eq!(run(&stub, AUDIT_ARCH_X86_64, 456), None);
        assert_eq!(run(&stub, AUDIT_ARCH_X86_64, 457), ENOSYS);
        assert_eq!(run(&stub, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 100), None);
        assert_eq!(run(&stub, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 457), ENOSYS);
        assert_eq!(run(&stub, AUDIT_ARCH_I386, 457), ENOSYS);
        assert_eq!(run(&stub, AUDIT_ARCH_I386, 3), None);
        assert_eq!(run(&stub, AUDIT_ARCH_ARM, 457), ENOSYS);
        assert_eq!(run(&stub, AUDIT_ARCH_ARM, ARM_PRIVATE_BASE + 5), None);
        // Not in the filter: left to libseccomp's bad-architecture action.
        assert_eq!(run(&stub, AUDIT_ARCH_AARCH64, 999), None);
    }

    #[test]
    fn stub_without_x32_leaves_x32_numbers_to_libseccomp() {
        let stub = enosys_stub(&[ScmpArch::X8664], &HashMap::from([(ScmpArch::X8664, 300)]));
        assert_eq!(run(&stub, AUDIT_ARCH_X86_64, 301), ENOSYS);
        assert_eq!(run(&stub, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 5), None);
        assert_eq!(run(&stub, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 999), None);
    }

    #[test]
    fn instructions_round_trip_through_bytes() {
        let stub = enosys_stub(&[ScmpArch::X8664], &HashMap::from([(ScmpArch::X8664, 300)]));
        let back = parse_instructions(&instruction_bytes(&stub)).unwrap();
        assert_eq!(instruction_bytes(&back), instruction_bytes(&stub));
        assert!(parse_instructions(&[0; 7]).is_none());
        assert!(parse_instructions(&[]).is_none());
    }
}
