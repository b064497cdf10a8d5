"""How the event store reads JetStream's acknowledgements, byte for byte as nats-server writes them."""

from __future__ import annotations

import pytest


def test_acks_are_read_as_jetstream_writes_them() -> None:
    # nats-server's own spellings (a replicated stream answers a re-sent Nats-Msg-Id with the
    # spaced `"duplicate": true`; reading it as a fresh write made re-sent records look accepted).
    from types import SimpleNamespace

    from shared.eventstore import PublishRejected, _parse_ack

    def ack(data: bytes) -> tuple[int, bool]:
        got = _parse_ack(SimpleNamespace(headers=None, data=data))
        return got.seq, got.duplicate

    assert ack(b'{"stream":"GW_EVENTS","seq":41}') == (41, False)
    assert ack(b'{"stream":"GW_EVENTS","seq":956,"duplicate": true}') == (956, True)
    assert ack(b'{"stream":"GW_EVENTS","seq":956,"duplicate":true}') == (956, True)
    assert ack(b'{"stream":"GW_EVENTS","domain":"hub","seq":7}') == (7, False)
    assert ack(b'{"stream":"GW_EVENTS","seq":999,"batch":"01a2","count":2}') == (999, False)
    with pytest.raises(PublishRejected) as err:
        ack(
            b'{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"},'
            b'"stream":"GW_EVENTS","seq":0}'
        )
    assert err.value.err_code == 10071


def test_a_write_meeting_a_closing_transport_is_an_append_error_not_a_crash() -> None:
    """While nats-py reconnects (a stream leader died) a request can be written to the transport it
    is closing; asyncio raises a bare RuntimeError.  The event store answers AppendError (503, send
    it again) — it was a 500 in the cluster failover test."""
    from shared.eventstore import AppendError, _connection_lost

    for err in (
        RuntimeError("unable to perform operation on <TCPTransport closed=True>; the handler is closed"),
        ConnectionResetError(104, "Connection reset by peer"),
    ):
        with pytest.raises(AppendError, match="lost during the write"), _connection_lost():
            raise err
