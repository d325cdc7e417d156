//! The cgroup v2 device filter: a `BPF_PROG_TYPE_CGROUP_DEVICE` program generated from a
//! [`DeviceState`], loaded with bpf(BPF_PROG_LOAD) and attached to the cgroup directory with
//! bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI).
//!
//! The program's context is `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }` where `access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*`; it returns 1
//! to allow and 0 to refuse (EPERM). With BPF_F_ALLOW_MULTI the programs of the cgroup and of
//! its ancestors all run, and every one must allow.
//!
//! Generated code (r1 = ctx):
//! ```text
//!   r2 = *(u32 *)(r1 + 0); w2 &= 0xffff      device type
//!   r3 = *(u32 *)(r1 + 0); w3 >>= 16         requested access
//!   r4 = *(u32 *)(r1 + 4)                    major
//!   r5 = *(u32 *)(r1 + 8)                    minor
//!   for each exception:
//!     if r2 != TYPE goto next
//!     deny-all mode:  w1 = w3; w1 &= ~ACCESS; if r1 != 0 goto next   (all bits covered)
//!     allow-all mode: w1 = w3; w1 &= ACCESS;  if r1 == 0 goto next   (any bit shared)
//!     if r4 != MAJOR goto next                (unless *)
//!     if r5 != MINOR goto next                (unless *)
//!     r0 = verdict; exit
//!   next: ...
//!   r0 = default; exit
//! ```

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::CgroupError;
use super::devices::{ACC_ALL, DeviceState};

/// One eBPF instruction (`struct bpf_insn`): opcode, dst/src registers (4 bits each), offset,
/// immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Instruction classes, sizes, modes, operations and sources (include/uapi/linux/bpf.h,
// bpf_common.h).
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_ALU64: u8 = 0x07;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JEQ: u8 = 0x10;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (dst & 0x0f) | (src << 4),
        off,
        imm,
    }
}

/// `dst = *(u32 *)(src + off)`
fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
}
/// 32-bit `dst op= imm` (zero-extends into the upper half).
fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
    insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm)
}
/// 32-bit `dst = src`.
fn mov32_reg(dst: u8, src: u8) -> Insn {
    insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
}
/// 64-bit `dst = imm`.
fn mov64_imm(dst: u8, imm: i32) -> Insn {
    insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
}
/// `if dst <op> imm goto pc + off` (off is patched later).
fn jmp_imm(op: u8, dst: u8, imm: i32) -> Insn {
    insn(BPF_JMP | op | BPF_K, dst, 0, 0, imm)
}
fn exit() -> Insn {
    insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
}

/// Compiles a device state into a program. Exceptions are checked in order; the first one
/// that matches gives its verdict, otherwise the default applies.
pub(crate) fn program(state: &DeviceState) -> Vec<Insn> {
    let mut p = vec![
        ldx_w(2, 1, 0),
        alu32_imm(BPF_AND, 2, 0xffff),
        ldx_w(3, 1, 0),
        alu32_imm(BPF_RSH, 3, 16),
        ldx_w(4, 1, 4),
        ldx_w(5, 1, 8),
    ];
    for ex in &state.exceptions {
        let start = p.len();
        let mut jumps = Vec::new();
        if let Some(t) = ex.kind.bpf_type() {
            jumps.push(p.len());
            p.push(jmp_imm(BPF_JNE, 2, t as i32));
        }
        if ex.access & ACC_ALL != ACC_ALL {
            p.push(mov32_reg(1, 3));
            if state.default_allow {
                p.push(alu32_imm(BPF_AND, 1, ex.access as i32));
                jumps.push(p.len());
                p.push(jmp_imm(BPF_JEQ, 1, 0));
            } else {
                p.push(alu32_imm(BPF_AND, 1, !ex.access as i32));
                jumps.push(p.len());
                p.push(jmp_imm(BPF_JNE, 1, 0));
            }
        }
        if let Some(m) = ex.major {
            jumps.push(p.len());
            p.push(jmp_imm(BPF_JNE, 4, m as i32));
        }
        if let Some(m) = ex.minor {
            jumps.push(p.len());
            p.push(jmp_imm(BPF_JNE, 5, m as i32));
        }
        p.push(mov64_imm(0, i32::from(ex.allow)));
        p.push(exit());
        let next = p.len();
        for j in jumps {
            p[j].off = (next - j - 1) as i16;
        }
        debug_assert!(next > start);
    }
    p.push(mov64_imm(0, i32::from(state.default_allow)));
    p.push(exit());
    p
}

// bpf(2) commands, program and attach types, flags.
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// # Safety
/// `attr` must point to a properly initialised attribute struct for `cmd`, and every pointer
/// inside it must be valid for the kernel to read or write for the duration of the call.
unsafe fn sys_bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: delegated to the caller (see above); size is the struct's real size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn bpf_err(cgroup: &str, op: &'static str, source: io::Error, log: String) -> CgroupError {
    CgroupError::Bpf {
        cgroup: cgroup.to_string(),
        op,
        source,
        log,
    }
}

fn load(cgroup: &str, insns: &[Insn]) -> Result<OwnedFd, CgroupError> {
    const LICENSE: &CStr = c"Apache";
    let attempt = |log: Option<&mut Vec<u8>>| -> io::Result<OwnedFd> {
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            ..Default::default()
        };
        attr.prog_name[..8].copy_from_slice(b"slipway\0");
        if let Some(buf) = log {
            attr.log_level = 1;
            attr.log_size = buf.len() as u32;
            attr.log_buf = buf.as_mut_ptr() as u64;
        }
        // SAFETY: insns, license and the optional log buffer outlive the call.
        let fd = unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr)? };
        // SAFETY: the kernel returned a new fd that we now own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    };
    match attempt(None) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            let mut buf = vec![0u8; 64 * 1024];
            let _ = attempt(Some(&mut buf));
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let log = String::from_utf8_lossy(&buf[..end]).trim().to_string();
            Err(bpf_err(cgroup, "prog load", first, log))
        }
    }
}

/// The ids of the device programs attached directly to the cgroup.
fn query(cgroup: &str, dir_fd: RawFd) -> Result<Vec<u32>, CgroupError> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: dir_fd as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    // SAFETY: prog_ids points to prog_cnt writable u32s.
    match unsafe { sys_bpf(BPF_PROG_QUERY, &mut attr) } {
        Ok(_) => {
            ids.truncate(attr.prog_cnt as usize);
            Ok(ids)
        }
        Err(e) => Err(bpf_err(cgroup, "prog query", e, String::new())),
    }
}

fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    // SAFETY: plain attribute struct without pointers.
    let fd = unsafe { sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)? };
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Makes `state` the device policy of the cgroup at `dir`: loads and attaches the new program
/// (unless the state allows everything), then detaches the programs that were attached before.
pub(crate) fn install(cgroup: &str, dir: &Path, state: &DeviceState) -> Result<(), CgroupError> {
    let dir_file = std::fs::File::open(dir).map_err(|e| super::fsio::io_err(cgroup, "open", dir, e))?;
    let dir_fd = dir_file.as_raw_fd();
    let old = query(cgroup, dir_fd)?;
    let allow_everything = state.default_allow && state.exceptions.is_empty();
    if !allow_everything {
        let prog = load(cgroup, &program(state))?;
        let mut attr = AttachAttr {
            target_fd: dir_fd as u32,
            attach_bpf_fd: prog.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: BPF_F_ALLOW_MULTI,
            ..Default::default()
        };
        // SAFETY: plain attribute struct; both fds are open.
        unsafe { sys_bpf(BPF_PROG_ATTACH, &mut attr) }.map_err(|e| bpf_err(cgroup, "prog attach", e, String::new()))?;
        // The attachment holds its own reference; `prog` may be closed now.
    }
    for id in old {
        let prog = match prog_fd_by_id(id) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(bpf_err(cgroup, "prog get fd by id", e, String::new())),
        };
        let mut attr = AttachAttr {
            target_fd: dir_fd as u32,
            attach_bpf_fd: prog.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        // SAFETY: plain attribute struct; both fds are open.
        match unsafe { sys_bpf(BPF_PROG_DETACH, &mut attr) } {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(bpf_err(cgroup, "prog detach", e, String::new())),
        }
    }
    Ok(())
}

/// How many device programs are attached directly to the cgroup at `dir`.
#[cfg(test)]
pub(crate) fn attached_count(dir: &Path) -> usize {
    let f = std::fs::File::open(dir).unwrap();
    query("test", f.as_raw_fd()).unwrap().len()
}

#[cfg(test)]
mod unit {
    use super::super::devices::{self, ACC_MKNOD, ACC_READ, ACC_WRITE, DevKind};
    use super::*;
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

    /// A tiny interpreter for the instructions `program` emits.
    fn run(prog: &[Insn], access_type: u32, major: u32, minor: u32) -> u64 {
        let ctx = [access_type, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 10_000, "runaway program");
            let i = prog[pc];
            let dst = (i.regs & 0x0f) as usize;
            let src = (i.regs >> 4) as usize;
            let imm = i.imm as i64 as u64;
            pc += 1;
            match i.code {
                0x61 => {
                    assert_eq!(src, 1, "loads only from ctx");
                    r[dst] = u64::from(ctx[(i.off / 4) as usize]);
                }
                0x54 => r[dst] = u64::from((r[dst] as u32) & (i.imm as u32)),
                0x74 => r[dst] = u64::from((r[dst] as u32) >> (i.imm as u32)),
                0xbc => r[dst] = u64::from(r[src] as u32),
                0xb7 => r[dst] = imm,
                0x15 => {
                    if r[dst] == imm {
                        pc = (pc as i64 + i64::from(i.off)) as usize
                    }
                }
                0x55 => {
                    if r[dst] != imm {
                        pc = (pc as i64 + i64::from(i.off)) as usize
                    }
                }
                0x95 => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn rule(allow: bool, t: LinuxDeviceType, maj: Option<i64>, min: Option<i64>, acc: &str) -> LinuxDeviceCgroup {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow)
            .set_typ(Some(t))
            .set_major(maj)
            .set_minor(min)
            .set_access(Some(acc.to_string()));
        r
    }

    fn check_against_emulator(state: &DeviceState) {
        let prog = program(state);
        let devices = [
            (DevKind::Char, 1, 3),
            (DevKind::Char, 1, 1),
            (DevKind::Char, 136, 4),
            (DevKind::Char, 10, 200),
            (DevKind::Char, 10, 229),
            (DevKind::Block, 254, 0),
            (DevKind::Block, 8, 1),
            (DevKind::Block, 1, 3),
        ];
        for (kind, maj, min) in devices {
            for access in 1..=7u32 {
                let want = state.allows(kind, maj, min, access);
                let t = kind.bpf_type().unwrap();
                let got = run(&prog, (access << 16) | t, maj, min);
                assert_eq!(got == 1, want, "{kind:?} {maj}:{min} access {access} in {state:?}");
            }
        }
    }

    #[test]
    fn cgroups_bpf_program_matches_emulator() {
        use LinuxDeviceType::{A, B, C};
        check_against_emulator(&DeviceState::from_oci(&devices::docker_default_devices()).unwrap());
        check_against_emulator(&DeviceState::allow_all());
        check_against_emulator(
            &DeviceState::from_oci(&[
                rule(false, B, Some(8), None, "w"),
                rule(false, C, Some(10), Some(229), "rwm"),
            ])
            .unwrap(),
        );
        check_against_emulator(
            &DeviceState::from_oci(&[
                rule(false, A, None, None, "rwm"),
                rule(true, C, Some(1), Some(3), "rw"),
                rule(true, B, None, Some(3), "m"),
            ])
            .unwrap(),
        );
    }

    #[test]
    fn cgroups_bpf_encoding() {
        // r2 = *(u32 *)(r1 + 0) is 61 12 00 00 00 00 00 00.
        let i = ldx_w(2, 1, 0);
        assert_eq!((i.code, i.regs, i.off, i.imm), (0x61, 0x12, 0, 0));
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(exit().code, 0x95);
        assert_eq!(mov32_reg(1, 3).code, 0xbc);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::size_of::<QueryAttr>(), 40);
        let _ = (ACC_MKNOD, ACC_READ, ACC_WRITE);
    }
}
