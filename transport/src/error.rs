//! The transport's own error, for the host's calls that can be refused (building it, adding or
//! updating peers).

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid peer URL: {0}")]
    InvalidUrl(String),
    #[error("invalid server or minimum cluster version")]
    InvalidVersion,
    #[error("transport stopped")]
    Stopped,
}
