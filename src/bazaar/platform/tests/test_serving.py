"""A serving process settles its garbage collector before it serves: what was loaded is
frozen out of the collector's sight, and young collections come less often."""

from __future__ import annotations

from bazaar.testing.interpreter import fresh_interpreter


def test_the_loaded_modules_are_frozen_and_the_young_generation_waits_longer() -> None:
    out = fresh_interpreter(
        """
        import gc
        from bazaar.platform.config import ServiceSettings
        from bazaar.platform.serving import YOUNG_GENERATION_THRESHOLD, run

        async def main():
            return gc.get_freeze_count(), gc.get_threshold()[0]

        before = gc.get_freeze_count(), gc.get_threshold()[0]
        frozen, young = run(main(), ServiceSettings(event_loop="asyncio"))
        print(before == (0, 700), frozen > 10_000, young == YOUNG_GENERATION_THRESHOLD)
        """
    )
    assert out.split() == ["True", "True", "True"]
