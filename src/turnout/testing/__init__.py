"""Test doubles for turnout, public because the gateway's demo mode runs on them too.

`ManualClock` moves only when told to (or when every task waits on it), and `SimulatedProvider`
answers like an upstream provider whose latency, errors, quotas and broken streams follow a
configured `Behaviour`, so routing can be exercised without sockets or real sleeping.
"""

from turnout.providers.simulated import Behaviour, Call, SimulatedProvider
from turnout.testing.clock import ManualClock

__all__ = ["Behaviour", "Call", "ManualClock", "SimulatedProvider"]
