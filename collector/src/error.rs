//! The collector's error type at the gRPC boundary, and its one mapping to a status.

/// What can go wrong while serving an agent.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The request is malformed; resending it unchanged will fail again.
    #[error("{0}")]
    InvalidArgument(String),
    /// Missing, wrong or revoked credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// This agent sends too often: it should slow down and retry later.
    #[error("{0}")]
    ResourceExhausted(String),
    /// Temporarily unable (database busy, disk full): the agent should retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A fault of the collector itself; logged, never sent out in detail.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for CollectorError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Busy(m) => CollectorError::Unavailable(m),
            StoreError::BadToken(m) => CollectorError::Unauthenticated(m),
            StoreError::Denied(m) => CollectorError::PermissionDenied(m),
            StoreError::Invalid(m) => CollectorError::InvalidArgument(m),
            other => CollectorError::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<CollectorError> for tonic::Status {
    fn from(e: CollectorError) -> Self {
        match e {
            CollectorError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            CollectorError::Unauthenticated(m) => tonic::Status::unauthenticated(m),
            CollectorError::PermissionDenied(m) => tonic::Status::permission_denied(m),
            CollectorError::ResourceExhausted(m) => tonic::Status::resource_exhausted(m),
            CollectorError::Unavailable(m) => tonic::Status::unavailable(m),
            CollectorError::Internal(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "Internal error while serving a request."
                );
                tonic::Status::internal("internal error; see the collector's log")
            }
        }
    }
}
