//! A unary call through the gateway: the body read (bounded) and decoded, the service called
//! in-process as a gRPC call would call it, the answer or the error encoded as grpc-gateway does.

use std::future::Future;

use axum::extract::Request;
use axum::response::Response;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Gateway, auth, body, codec, errors};

/// Calls `call` with the request `req` carries, and answers with its response.
pub(super) async fn call<Req, Resp, F, Fut>(gw: &Gateway, req: Request, call: F) -> Response
where
    Req: DeserializeOwned + Default + prost::Message,
    Resp: Serialize,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    let (parts, body) = req.into_parts();
    let message = match decode::<Req>(gw, body).await {
        Ok(m) => m,
        Err(status) => return errors::unary(&status),
    };
    match call(auth::grpc_request(&parts, message)).await {
        Ok(resp) => match codec::encode(resp.get_ref()) {
            Ok(json) => codec::ok_response(json),
            Err(status) => errors::unary(&status),
        },
        Err(status) => errors::unary(&status),
    }
}

/// The single request message of a body, as a unary or server-streaming call takes it: a body
/// that is not JSON is InvalidArgument with the decoder's text; one larger than the gRPC
/// server would accept is refused with grpc-go's text, as etcd's gateway passes it on.
pub(super) async fn decode<Req>(gw: &Gateway, body: axum::body::Body) -> Result<Req, tonic::Status>
where
    Req: DeserializeOwned + Default + prost::Message,
{
    let mut body = body;
    // The first JSON value, taken as soon as it is whole: over WebSocket the body does not end.
    let message = body::read_value::<Req>(&gw.limits(), &mut body, &mut codec::Values::default()).await?;
    Ok(message.unwrap_or_default())
}
