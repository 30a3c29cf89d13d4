//! Every way a request can fail, and the one place where a failure becomes an HTTP response.

use lambda_http::{http::StatusCode, Body, Response};
use serde_json::json;

use crate::{http::json_response, StoreError};

/// A request that cannot be served, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("The message body is empty.")]
    EmptyMessage,
    #[error("The message is larger than the limit of {limit} bytes.")]
    MessageTooLarge { limit: usize },
    #[error("The request body is marked as base64 but is not valid base64.")]
    InvalidBody,
    #[error("The Content-Type must be one media type (type/subtype, optionally with ; parameters, never a list), printable ASCII of at most {max} bytes.")]
    InvalidContentType { max: usize },
    #[error("{0}")]
    InvalidQuery(String),
    #[error("The message id must be a lowercase hyphenated UUID version 7.")]
    InvalidId,
    #[error("No message has this id.")]
    NotFound,
    #[error("No such route.")]
    RouteNotFound,
    #[error("This function does not serve that method.")]
    MethodNotAllowed,
    #[error("The message storage is unavailable. Try again later.")]
    StorageUnavailable(#[source] StoreError),
    #[error("The message storage is full.")]
    StorageFull(#[source] StoreError),
    #[error("A stored message could not be read.")]
    Internal(#[source] StoreError),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::NotFound,
            StoreError::Full(_) => Self::StorageFull(error),
            // A refused POST (a clock too far off, a publication too slow, a DELETE of everything
            // racing it) stored nothing: the client may try again, as after an outage.
            StoreError::Unavailable(_) | StoreError::Refused(_) => Self::StorageUnavailable(error),
            StoreError::Corrupt(_) => Self::Internal(error),
        }
    }
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::EmptyMessage
            | Self::InvalidBody
            | Self::InvalidContentType { .. }
            | Self::InvalidQuery(_)
            | Self::InvalidId => StatusCode::BAD_REQUEST,
            Self::MessageTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::StorageUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable error code of the contract.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyMessage => "empty_message",
            Self::MessageTooLarge { .. } => "message_too_large",
            Self::InvalidBody => "invalid_body",
            Self::InvalidContentType { .. } => "invalid_content_type",
            Self::InvalidQuery(_) => "invalid_query",
            Self::InvalidId => "invalid_id",
            Self::NotFound | Self::RouteNotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::StorageUnavailable(_) => "storage_unavailable",
            Self::StorageFull(_) => "storage_full",
            Self::Internal(_) => "internal_error",
        }
    }

    /// Whether the fault is on our side (and so worth an error log), not the client's.
    pub fn is_server_error(&self) -> bool {
        self.status().is_server_error()
    }

    /// The response: the status and `{"error":{"code","message"}}`.
    pub fn into_response(self) -> Response<Body> {
        json_response(
            self.status(),
            &json!({ "error": { "code": self.code(), "message": self.to_string() } }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn every_error_is_a_json_body_with_its_status() {
        let errors = [
            (ApiError::EmptyMessage, 400, "empty_message"),
            (
                ApiError::MessageTooLarge { limit: 5 },
                413,
                "message_too_large",
            ),
            (
                ApiError::InvalidQuery("Bad limit.".into()),
                400,
                "invalid_query",
            ),
            (ApiError::InvalidId, 400, "invalid_id"),
            (ApiError::NotFound, 404, "not_found"),
            (
                StoreError::Unavailable(io::ErrorKind::PermissionDenied.into()).into(),
                503,
                "storage_unavailable",
            ),
            (
                StoreError::Full(io::ErrorKind::StorageFull.into()).into(),
                507,
                "storage_full",
            ),
        ];
        for (error, status, code) in errors {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()["content-type"], "application/json");
            let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            assert_eq!(body["error"]["code"], code);
            assert!(body["error"]["message"].as_str().unwrap().ends_with('.'));
        }
    }

    #[test]
    fn full_disk_kinds_map_to_storage_full() {
        for kind in [io::ErrorKind::StorageFull, io::ErrorKind::QuotaExceeded] {
            let error: ApiError = StoreError::from(io::Error::from(kind)).into();
            assert_eq!(error.status().as_u16(), 507);
        }
        for kind in [
            io::ErrorKind::NotFound,
            io::ErrorKind::PermissionDenied,
            io::ErrorKind::ReadOnlyFilesystem,
        ] {
            let error: ApiError = StoreError::from(io::Error::from(kind)).into();
            assert_eq!(error.status().as_u16(), 503);
        }
    }
}
