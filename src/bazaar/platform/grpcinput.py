"""A gRPC request that is not a valid message is the caller's mistake: INVALID_ARGUMENT.

grpc.aio parses each request before the servicer runs, and answers UNKNOWN (logging an
error) when the bytes are no valid protobuf message (truncated, a string field that is
not UTF-8). This interceptor has the raw bytes handed over instead and parses them
itself, so such a request gets a clean refusal that names what was wrong.
`create_grpc_server` installs it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc


class ParseRequestsInHandler(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler  # streams (reflection) and unknown methods: grpc's own handling
        parse = handler.request_deserializer
        inner = handler.unary_unary
        method = handler_call_details.method

        async def parsed(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            try:
                request = parse(raw)
            except Exception as exc:  # DecodeError, or whatever a custom parser raises
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"not a valid request message for {method}: {exc}"[:500],
                )
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            parsed, request_deserializer=None, response_serializer=handler.response_serializer
        )
