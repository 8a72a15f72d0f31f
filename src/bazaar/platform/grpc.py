"""gRPC (grpc.aio) server and channel with the platform's defaults: the standard health
service, reflection, per-method metrics, and client retries on UNAVAILABLE."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bazaar.platform import metrics
from bazaar.platform.grpcinput import ParseRequestsInHandler
from bazaar.platform.telemetry import grpc_client_interceptors, grpc_server_interceptors


class _MetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, service: str) -> None:
        self._service = service

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        method = handler_call_details.method.rsplit("/", 1)[-1]
        service = self._service

        latency = metrics.grpc_latency.labels(service, method)

        async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                response = await inner(request, context)
            except Exception:
                code = context.code() or grpc.StatusCode.UNKNOWN
                metrics.grpc_requests.labels(service, method, code.name).inc()
                raise
            finally:
                metrics.observe(latency, time.perf_counter() - started)
            code = context.code() or grpc.StatusCode.OK
            metrics.grpc_requests.labels(service, method, code.name).inc()
            return response

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def create_grpc_server(
    service: str, full_service_names: Iterable[str]
) -> tuple[grpc.aio.Server, health.HealthServicer]:
    """A server with health (every named service SERVING once started) and reflection.
    Register the service's own servicers on it, then `add_insecure_port` and `start`."""
    server = grpc.aio.server(
        # Tracing's first, so that its server span covers the others (and the metrics'
        # exemplars find it).
        interceptors=[
            *grpc_server_interceptors(),
            _MetricsInterceptor(service),
            ParseRequestsInHandler(),
        ],
        options=[("grpc.max_receive_message_length", 1024 * 1024)],
    )
    health_servicer = (
        health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(full_service_names)
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    return server, health_servicer


async def mark_serving(health_servicer: Any, names: Iterable[str]) -> None:
    for name in ["", *names]:
        result = health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        if isinstance(result, Awaitable):
            await result


def create_channel(address: str, *, attempts: int = 4) -> grpc.aio.Channel:
    """A channel whose unary calls are retried on UNAVAILABLE with backoff (gRPC's own
    retry policy). Calls must still be idempotent: the servers here key them by order id."""
    service_config = {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": attempts,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
    return grpc.aio.insecure_channel(
        address,
        options=[("grpc.service_config", json.dumps(service_config)), ("grpc.enable_retries", 1)],
        interceptors=grpc_client_interceptors() or None,
    )
