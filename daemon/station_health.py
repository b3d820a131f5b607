"""Which of a station's instruments answer: what the station-health dashboard shows.

An instrument is down when it could not be opened, or when a channel's safety supervisor has
found it silent past its watchdog timeout (a potentiostat that stopped giving readings while
sourcing, an EIS unit in the middle of a sweep, a chamber or a jig whose polls fail). The
watchdogs are the supervisor's own, so the dashboard and the safety trips agree.
"""

from __future__ import annotations

from cellrig.daemon.channel_rig import POTENTIOSTAT
from cellrig.daemon.station import Station
from cellrig.daemon.supervisor import EIS


def instrument_states(station: Station) -> dict[str, bool]:
    """Each configured instrument's name → whether it answers."""
    states = {name: name not in station.failures for name in station.config.instruments}
    now_s = station.timer.now_s()
    for channel in station.channels.values():
        config = channel.config
        jig_parts = [] if config.jig is None else [config.jig.gauge, config.jig.regulator]
        by_watchdog: dict[str, list[str | None]] = {POTENTIOSTAT: [config.potentiostat.instrument],
                       EIS: [config.eis], f"{config.name}-jig": jig_parts}
        for watched, watchdog in channel.supervisor.watchdogs.items():
            if watchdog.silence_s(now_s) is None:
                continue
            for instrument in by_watchdog.get(watched, [watched]):
                if instrument is not None and instrument in states:
                    states[instrument] = False
    return states
