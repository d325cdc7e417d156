//! The channel between the runtime and a container's init process while it is set up: a
//! SOCK_SEQPACKET pair, so each message arrives whole, with descriptors passed alongside.
//! Both ends are close-on-exec: when the workload is exec'd the runtime reads end-of-file,
//! which is how it learns that execve succeeded.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, sendmsg, socketpair,
};

/// Runtime to init: the init has joined its cgroup; carry on setting up.
pub const GO: u8 = b'G';
/// Runtime to init: exec the workload (the OCI "start").
pub const START: u8 = b'S';
/// Init to runtime: set up and waiting for START.
pub const READY: u8 = b'R';
/// Init to runtime: failed; the rest of the message says why.
pub const ERROR: u8 = b'E';
/// Init to runtime: here is the console's pty master.
pub const CONSOLE: u8 = b'T';
/// Exec helper to runtime: the PID (in the runtime's namespace) of the process it forked.
pub const PID: u8 = b'P';

pub struct Channel {
    fd: OwnedFd,
}

/// What arrived.
pub enum Message {
    Byte(u8),
    Error(String),
    Console(OwnedFd),
    Pid(i32),
    /// The other end is closed: for the runtime, the init exec'd its workload (or died).
    Closed,
}

pub fn pair() -> Result<(Channel, Channel), Errno> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, byte: u8) -> Result<(), Errno> {
        self.send_bytes(&[byte], None)
    }

    pub fn send_error(&self, message: &str) -> Result<(), Errno> {
        let mut buf = Vec::with_capacity(message.len() + 1);
        buf.push(ERROR);
        buf.extend_from_slice(&message.as_bytes()[..message.len().min(4000)]);
        self.send_bytes(&buf, None)
    }

    pub fn send_pid(&self, pid: i32) -> Result<(), Errno> {
        let mut buf = [PID, 0, 0, 0, 0];
        buf[1..].copy_from_slice(&pid.to_le_bytes());
        self.send_bytes(&buf, None)
    }

    pub fn send_fd(&self, tag: u8, fd: RawFd) -> Result<(), Errno> {
        self.send_bytes(&[tag], Some(fd))
    }

    fn send_bytes(&self, bytes: &[u8], fd: Option<RawFd>) -> Result<(), Errno> {
        let iov = [IoSlice::new(bytes)];
        let fds;
        let cmsgs: &[ControlMessage] = match fd {
            Some(f) => {
                fds = [f];
                &[ControlMessage::ScmRights(&fds)]
            }
            None => &[],
        };
        loop {
            match sendmsg::<()>(self.fd.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
                Err(Errno::EINTR) => continue,
                r => return r.map(drop),
            }
        }
    }

    pub fn recv(&self) -> Result<Message, Errno> {
        let mut buf = [0u8; 4096];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let (len, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(msg) => {
                    let mut fd = None;
                    for c in msg.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for f in fds {
                                // SAFETY: SCM_RIGHTS hands us a new descriptor we now own.
                                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
            }
        };
        Ok(match (len, buf.first()) {
            (0, _) => Message::Closed,
            (_, Some(&ERROR)) => Message::Error(String::from_utf8_lossy(&buf[1..len]).into_owned()),
            (5, Some(&PID)) => Message::Pid(i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]])),
            (_, Some(&CONSOLE)) => match fd {
                Some(fd) => Message::Console(fd),
                None => Message::Error("console message without a descriptor".into()),
            },
            (_, Some(&b)) => Message::Byte(b),
            (_, None) => Message::Closed,
        })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
