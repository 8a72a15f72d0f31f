"""Optional extras of dependencies stay out of the service processes (memory: README):
redis, rich and pygments, and nats-py's websocket transport (aiohttp)."""

from __future__ import annotations

from bazaar.testing.interpreter import fresh_interpreter as run


def test_a_hidden_module_cannot_be_imported_inside_the_block_and_can_after() -> None:
    out = run(
        """
        from bazaar.platform.lean_imports import hidden
        with hidden("redis"):
            try:
                import redis
                print("imported")
            except ImportError:
                print("hidden")
        import redis.asyncio
        print(redis.asyncio.Redis.__name__)
        """
    )
    assert out.splitlines() == ["hidden", "Redis"]


def test_a_module_loaded_already_stays_usable() -> None:
    out = run(
        """
        import redis
        from bazaar.platform.lean_imports import hidden
        with hidden("redis"):
            import redis as again
        print(again is redis)
        """
    )
    assert out == "True"


def test_a_service_process_loads_no_redis_client_and_no_rich() -> None:
    out = run(
        """
        import sys
        import bazaar.services.order.bootstrap
        from bazaar.platform.clients import ResilientClient
        print(sorted({"redis", "rich", "pygments"} & set(sys.modules)), ResilientClient.__name__)
        """
    )
    assert out == "[] ResilientClient"


def test_the_nats_transport_loads_no_aiohttp_and_aiohttp_still_imports_after() -> None:
    out = run(
        """
        import sys
        import bazaar.services.payment.bootstrap
        from bazaar.platform.brokers import make_transport, open_dead_letters
        make_transport("nats://127.0.0.1:4222", "payment")
        open_dead_letters("nats://127.0.0.1:4222")
        print("aiohttp" in sys.modules)
        import aiohttp
        print(aiohttp.ClientSession.__name__)
        """
    )
    assert out.splitlines() == ["False", "ClientSession"]
