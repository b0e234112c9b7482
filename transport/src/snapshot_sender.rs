//! Snapshot sender (`snapshot_sender.go`): `POST /raft/snapshot` with a body of one
//! message-codec frame (the MsgSnap) followed by the snapshot's state data, streamed from the
//! host's reader in 64 KiB chunks through a small bounded channel (memory stays bounded whatever
//! the snapshot's size). The data must be exactly the announced size (etcd's ExactReadCloser):
//! a short or long reader, or a read error, aborts the upload so the receiver never sees a clean
//! end of a wrong snapshot. The outcome is reported to raft (`report_snapshot`, and
//! `report_unreachable` on failure); the response is awaited at most 5 s after it starts.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use raft::SnapshotStatus;
use tokio::io::AsyncReadExt;

use crate::body::ChannelBody;
use crate::ctx::Ctx;
use crate::fault::CUT_REFUSAL;
use crate::host::{CriticalError, OutgoingSnapshot};
use crate::msg_codec;
use crate::status::PeerStatus;
use crate::urlpick::UrlPicker;
use crate::util::{PostError, RAFT_SNAPSHOT_PREFIX, check_post_response, id_str, read_small_body, set_common_headers};

/// etcd's `snapResponseReadTimeout`.
pub const SNAP_RESPONSE_READ_TIMEOUT: Duration = Duration::from_secs(5);
const CHUNK: usize = 64 * 1024;

pub(crate) async fn send(ctx: Arc<Ctx>, picker: Arc<UrlPicker>, status: Arc<PeerStatus>, snap: OutgoingSnapshot) {
    let to = snap.message.to;
    let u = picker.pick();
    let res =
        if ctx.faults.is_cut(to) { Err(PostError::Other(CUT_REFUSAL.into())) } else { post(&ctx, &u, snap).await };
    match res {
        Ok(()) => {
            status.activate();
            ctx.raft.report_snapshot(to, SnapshotStatus::Finish);
            tracing::info!(to = %id_str(to), "sent database snapshot");
        }
        Err(e) => {
            tracing::warn!(to = %id_str(to), "failed to send database snapshot: {e}");
            if matches!(e, PostError::MemberRemoved) {
                ctx.raft.report_critical_error(CriticalError::MemberRemoved);
            }
            picker.unreachable(&u);
            status.deactivate("sendMsgSnap", "post", &e.to_string());
            ctx.raft.report_unreachable(to);
            ctx.raft.report_snapshot(to, SnapshotStatus::Failure);
        }
    }
}

async fn post(ctx: &Ctx, base: &str, snap: OutgoingSnapshot) -> Result<(), PostError> {
    let url = format!("{base}{RAFT_SNAPSHOT_PREFIX}");
    let (tx, body) = ChannelBody::channel(4);
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(&url)
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .map_err(|e| PostError::Other(e.to_string()))?;
    set_common_headers(req.headers_mut(), &ctx.cfg);
    let OutgoingSnapshot { message, mut data, size } = snap;
    let feeder = tokio::spawn(async move {
        let mut head = Vec::new();
        msg_codec::encode_frame(&message, &mut head);
        if tx.send(Ok(Bytes::from(head))).await.is_err() {
            return;
        }
        let mut sent: u64 = 0;
        loop {
            let mut buf = vec![0u8; CHUNK];
            match data.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    sent += n as u64;
                    if sent > size {
                        let _ = tx.send(Err(io::Error::other("snapshot data longer than its size"))).await;
                        return;
                    }
                    buf.truncate(n);
                    if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
        if sent != size {
            let _ =
                tx.send(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "snapshot data shorter than its size"))).await;
        }
    });
    let res = ctx.client.request(req).await;
    feeder.abort();
    let resp = res.map_err(|e| PostError::Other(e.to_string()))?;
    let status = resp.status();
    let body =
        tokio::time::timeout(SNAP_RESPONSE_READ_TIMEOUT, read_small_body(resp.into_body(), SNAP_RESPONSE_READ_TIMEOUT))
            .await
            .map_err(|_| PostError::Other("snapshot response read timeout".into()))?
            .map_err(|e| PostError::Other(e.to_string()))?;
    check_post_response(status, &body, &url)
}
