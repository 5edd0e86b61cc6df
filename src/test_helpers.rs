//! Helpers for unit tests.

pub(crate) fn assert_send<T: Send>() {}
pub(crate) fn assert_sync<T: Sync>() {}
pub(crate) fn assert_unpin<T: Unpin>() {}

#[test]
fn traits() {
    use crate::*;
    type Svc = tower::util::ServiceFn<
        fn(
            http::Request<()>,
        ) -> std::future::Ready<
            Result<tokio_stream::Iter<std::vec::IntoIter<Event>>, std::convert::Infallible>,
        >,
    >;
    type St = tokio_stream::Iter<std::vec::IntoIter<Event>>;
    type Fut = std::future::Ready<Result<St, std::convert::Infallible>>;

    assert_send::<Event>();
    assert_sync::<Event>();
    assert_send::<sse::Sse<Svc>>();
    assert_sync::<sse::Sse<Svc>>();
    assert_send::<sse::ResponseFuture<Fut>>();
    assert_unpin::<sse::ResponseFuture<Fut>>();
    assert_send::<body::PushBody<St>>();
    assert_sync::<body::PushBody<St>>();
    assert_unpin::<body::PushBody<St>>();
    assert_send::<long_poll::LongPoll<Svc>>();
    assert_sync::<long_poll::LongPoll<Svc>>();
    assert_send::<long_poll::ResponseFuture<Fut, St>>();
    assert_send::<negotiate::Negotiate<Svc>>();
    assert_sync::<negotiate::Negotiate<Svc>>();
    assert_send::<negotiate::ResponseFuture<Fut, St>>();
    assert_send::<heartbeat::AddHeartbeat<Svc>>();
    assert_send::<stream::Heartbeat<St>>();
    assert_sync::<stream::Heartbeat<St>>();
    assert_send::<hub::MemoryHub>();
    assert_sync::<hub::MemoryHub>();
    assert_send::<hub::MemorySubscription>();
    assert_unpin::<hub::MemorySubscription>();
    assert_send::<body::PushBody<hub::MemorySubscription>>();
    assert_unpin::<body::PushBody<hub::MemorySubscription>>();
    assert_send::<last_event_id::SetLastEventId<Svc>>();
    assert_sync::<last_event_id::SetLastEventId<Svc>>();
    assert_send::<GuardResponseFuture<Fut>>();
    assert_send::<body::GuardBody<http_body_util::Full<bytes::Bytes>>>();
    assert_send::<drain::AddDrain<Svc>>();
    assert_sync::<drain::AddDrain<Svc>>();
    assert_send::<drain::ResponseFuture<Fut>>();
    assert_send::<drain::Draining<St>>();
    assert_send::<limit::ConnectionLimit<Svc>>();
    assert_sync::<limit::ConnectionLimit<Svc>>();
    assert_send::<limit::ResponseFuture<Fut>>();
    assert_send::<limit::Limited<St>>();
    assert_sync::<limit::Limited<St>>();
    assert_send::<ws::Ws<Svc>>();
    assert_sync::<ws::Ws<Svc>>();
    assert_send::<ws::ResponseFuture<Fut>>();
    assert_send::<auth_ticket::RequireAuthTicket<Svc>>();
    assert_sync::<auth_ticket::RequireAuthTicket<Svc>>();
    assert_send::<origin::CheckOrigin<Svc>>();
}
