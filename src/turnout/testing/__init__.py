"""Test doubles for turnout, public because the gateway's demo mode runs on them too.

`ManualClock` moves only when told to (or when every task waits on it), `SimulatedProvider`
answers like an upstream provider whose latency, errors, quotas and broken streams follow a
configured `Behaviour`, so routing can be exercised without sockets or real sleeping, and
`MockTransport` answers a provider's upstream calls from a function, so adapters can be
tested through their provider without sockets.
"""

from turnout.providers.simulated import Behaviour, Call, SimulatedProvider
from turnout.testing.clock import ManualClock
from turnout.testing.transport import MockStream, MockTransport

__all__ = ["Behaviour", "Call", "ManualClock", "MockStream", "MockTransport", "SimulatedProvider"]
