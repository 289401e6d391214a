"""The engine's per-process state in one place, so tests (and settings changes) can start it afresh."""


def reset() -> None:
    from cache_app.services import fetch, fleet, housekeeping, limits, locks, memory, stats, tiers

    memory.memory_tier().clear()
    stats.counters().discard()
    locks.locks_reset()
    limits.limits_reset()
    fleet.fleet_reset()
    tiers.tiers_reset()
    fetch.entry_ids_reset()
    housekeeping.housekeeping_reset()
