//! How the gateway answers a failure, as grpc-gateway v1 (the version etcd 3.4 uses) does: a
//! unary call's error is `{"error","message","code"}` with the HTTP status its gRPC code maps
//! to; an error inside a stream is one `{"error":{grpc_code,http_code,message,http_status}}`
//! object; paths and methods the gateway does not serve get Go's plain-text answers.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use tonic::Code;

/// grpc-gateway's `HTTPStatusFromCode` (v1.9: FailedPrecondition is still 412 there).
pub(super) fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// grpc-gateway's `errorBody`, marshaled by jsonpb: fields in this order, empty ones omitted.
#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    error: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    code: i32,
}

/// grpc-gateway's `StreamError` inside `{"error": …}`.
#[derive(Serialize)]
struct StreamError<'a> {
    #[serde(skip_serializing_if = "is_zero")]
    grpc_code: i32,
    #[serde(skip_serializing_if = "is_zero")]
    http_code: i32,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    http_status: &'a str,
}

#[derive(Serialize)]
struct StreamErrorChunk<'a> {
    error: StreamError<'a>,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// A failed unary call (or a stream refused before it started): grpc-gateway's
/// `DefaultHTTPError`.
pub(super) fn unary(status: &tonic::Status) -> Response {
    let body = ErrorBody { error: status.message(), message: status.message(), code: status.code() as i32 };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    (http_status(status.code()), [(header::CONTENT_TYPE, HeaderValue::from_static(super::codec::CONTENT_TYPE))], json)
        .into_response()
}

/// The object a stream ends with when its call fails (grpc-gateway's
/// `handleForwardResponseStreamError`): no delimiter after it, the stream ends.
pub(super) fn stream_chunk(status: &tonic::Status) -> Bytes {
    let http = http_status(status.code());
    let chunk = StreamErrorChunk {
        error: StreamError {
            grpc_code: status.code() as i32,
            http_code: i32::from(http.as_u16()),
            message: status.message(),
            http_status: http.canonical_reason().unwrap_or(""),
        },
    };
    Bytes::from(serde_json::to_vec(&chunk).unwrap_or_default())
}

/// Go's `http.Error`: a plain-text body with a newline, and `nosniff`.
fn go_http_error(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        text,
    )
        .into_response()
}

/// A path under the gateway's prefixes that no route serves (grpc-gateway's mux, not Go's
/// default one: "Not Found", not "404 page not found").
pub(super) fn not_found() -> Response {
    go_http_error(StatusCode::NOT_FOUND, "Not Found\n")
}

/// A route asked for with a method other than POST.
pub(super) fn method_not_allowed() -> Response {
    go_http_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n")
}

/// Go's mux sends `/v3` to `/v3/`, where the gateway is mounted.
pub(super) fn moved(location: &'static str) -> Response {
    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, HeaderValue::from_static(location))]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_grpc_gateways() {
        let s = tonic::Status::not_found("etcdserver: requested lease not found");
        assert_eq!(http_status(s.code()), StatusCode::NOT_FOUND);
        assert_eq!(
            String::from_utf8_lossy(&stream_chunk(&tonic::Status::unknown("auth: user name is empty"))),
            r#"{"error":{"grpc_code":2,"http_code":500,"message":"auth: user name is empty","http_status":"Internal Server Error"}}"#
        );
    }
}
