//! The runtime's errors: typed where callers act on them (the engine maps them to Docker's
//! status codes: a missing container is a 404, a conflict a 409).

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {0} already exists")]
    AlreadyExists(String),
    #[error("container {id} is {status}: {what}")]
    WrongState { id: String, status: String, what: String },
    #[error("invalid container id {0:?}: use letters, digits, '.', '_' and '-', at most 128")]
    InvalidId(String),
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("{what}: {errno}")]
    Os { what: String, errno: Errno },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("the container's init failed: {0}")]
    Init(String),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
}

impl RuntimeError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
        let what = what.into();
        move |source| RuntimeError::Io { what, source }
    }
    pub fn os(what: impl Into<String>) -> impl FnOnce(Errno) -> RuntimeError {
        let what = what.into();
        move |errno| RuntimeError::Os { what, errno }
    }
}
