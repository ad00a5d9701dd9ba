//! Property tests: every request and every response, emitted and parsed back, is itself.
#![allow(clippy::unwrap_used, clippy::panic)]

use proptest::prelude::*;
use serde_json::Value;

use crate::line::{
    ControlError, ErrorCode, parse_line, parse_response, request_line, response_line,
};
use crate::ops::{Op, Reply, any_request};
use crate::replies::{Guard, HelloInfo, Limits, Queued, Stopping, VfSummary};
use crate::stats::any_stats;

/// Any `id` a client may send.
fn any_id() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        any::<i64>().prop_map(|n| Some(Value::from(n))),
        ".{0,12}".prop_map(|s| Some(Value::from(s))),
    ]
}

/// Any result of operation `op` (the match names every operation: a new one needs a case).
fn any_reply(op: Op) -> BoxedStrategy<Reply> {
    let summary = (
        any::<usize>(),
        any::<bool>(),
        any::<(u32, u32, u32, u64, u64)>(),
    )
        .prop_map(
            |(
                vf,
                checkpointing,
                (open_epoch, committed_epoch, buffered_frames, released, discarded),
            )| {
                VfSummary {
                    vf,
                    checkpointing,
                    open_epoch,
                    committed_epoch,
                    buffered_frames,
                    released,
                    discarded,
                }
            },
        );
    match op {
        Op::Hello => (
            (
                ".{0,8}",
                ".{0,8}",
                ".{0,8}",
                proptest::option::of(".{0,12}"),
            ),
            (any::<usize>(), proptest::option::of(".{0,5}"), ".{0,8}"),
            proptest::option::of(proptest::collection::vec(".{0,16}", 0..3)),
        )
            .prop_map(
                |((name, version, backend, pf), (vfs, port_rate, hac), vfio_user)| {
                    Reply::Hello(HelloInfo {
                        name,
                        version,
                        backend,
                        pf,
                        vfs,
                        port_rate,
                        hac,
                        vfio_user,
                    })
                },
            )
            .boxed(),
        Op::Tag => summary.prop_map(Reply::Tag).boxed(),
        Op::Untag => summary.prop_map(Reply::Untag).boxed(),
        Op::Open => summary.prop_map(Reply::Open).boxed(),
        Op::Commit => summary.prop_map(Reply::Commit).boxed(),
        Op::Abort => summary.prop_map(Reply::Abort).boxed(),
        Op::Failover => summary.prop_map(Reply::Failover).boxed(),
        Op::Unprotect => summary.prop_map(Reply::Unprotect).boxed(),
        Op::SetLimits => any::<(usize, u32, u32)>()
            .prop_map(|(vf, limit_frames, limit_bytes)| {
                Reply::SetLimits(Limits {
                    vf,
                    limit_frames,
                    limit_bytes,
                })
            })
            .boxed(),
        Op::SetGuard => any::<u32>()
            .prop_map(|guard_bytes| Reply::SetGuard(Guard { guard_bytes }))
            .boxed(),
        Op::Stats => any_stats().prop_map(Reply::Stats).boxed(),
        Op::Send => any::<(usize, u32, usize)>()
            .prop_map(|(vf, queued, len)| Reply::Send(Queued { vf, queued, len }))
            .boxed(),
        Op::Shutdown => any::<bool>()
            .prop_map(|stopping| Reply::Shutdown(Stopping { stopping }))
            .boxed(),
    }
}

fn any_op() -> impl Strategy<Value = Op> {
    proptest::sample::select(Op::ALL)
}

fn any_error() -> impl Strategy<Value = ControlError> {
    (proptest::sample::select(ErrorCode::ALL), ".{0,40}")
        .prop_map(|(code, message)| ControlError::new(code, message))
}

proptest! {
    #[test]
    fn every_request_emits_and_parses_to_itself(request in any_request(), id in any_id()) {
        let line = request_line(id.as_ref(), &request);
        prop_assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        match parse_line(line.trim_end().as_bytes()) {
            Ok(env) => {
                prop_assert_eq!(env.request, request);
                prop_assert_eq!(env.id, id);
            }
            // Only the range checks serde cannot express may refuse a well-typed request.
            Err((back, e)) => {
                prop_assert_eq!(e.code, ErrorCode::BadField);
                prop_assert_eq!(request.op(), Op::Send);
                prop_assert_eq!(back, id);
            }
        }
    }

    #[test]
    fn every_reply_emits_and_parses_to_itself(
        (op, reply) in any_op().prop_flat_map(|op| (Just(op), any_reply(op))),
        id in any_id(),
    ) {
        prop_assert_eq!(reply.op(), op);
        let line = response_line(id.as_ref(), Ok(&reply));
        prop_assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let back = parse_response(op, &line).unwrap();
        prop_assert_eq!(back.result, Ok(reply));
        prop_assert_eq!(back.id, id);
    }

    #[test]
    fn every_error_emits_and_parses_to_itself(op in any_op(), e in any_error(), id in any_id()) {
        let line = response_line(id.as_ref(), Err(&e));
        prop_assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let back = parse_response(op, &line).unwrap();
        prop_assert_eq!(back.result, Err(e));
        prop_assert_eq!(back.id, id);
    }
}

#[test]
fn a_reply_of_another_operation_is_a_bad_answer() {
    let line = response_line(None, Ok(&Reply::SetGuard(Guard { guard_bytes: 1 })));
    let e = parse_response(Op::Commit, &line).unwrap_err();
    assert!(e.starts_with("bad `commit` result"), "{e}");
    assert!(parse_response(Op::Hello, "{\"ok\":true}").is_err());
    assert!(parse_response(Op::Hello, "nonsense").is_err());
}
