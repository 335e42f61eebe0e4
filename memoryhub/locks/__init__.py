"""Locks: TTL leases with fencing tokens, and human holds.

- `acquire.py`: validating a request, one attempt in one transaction, the wait between attempts;
- `release.py`: a lease after its grant: heartbeat, release, force-release, expiry, the kill switch;
- `holds.py`: humans stopping agents on a resource, and the one hold check everyone asks;
- `alerts.py`: leases held and waits lasting more than twice what they should;
- `events.py`: what lock events record, and which namespaces they touch;
- `queries.py`: the statements written out in SQL, each with its reason;
- `services.py`: the names other apps import.

Lock order, the one every transaction here follows so none can deadlock with another:
the caller's Agent row -> LockResource rows by name -> Lease rows by id -> the event sequence row.
Releases and heartbeats lock only their Lease row; the kill switch locks the Agent row, then that
agent's Lease rows, and never a LockResource row.

An acquisition is all or nothing and happens in ONE transaction: lapsed leases on the requested
resources are expired there (a lapsed lease is free at once), conflicts are checked under the
resource row locks, and the grant, its counters and its `lock.acquired` event commit together. The
fencing token is the lease's id, drawn when the grant is inserted under the resource row locks: ids
only grow, and the next grant on a resource can only draw its id after this one commits, so tokens
rise strictly per resource.
"""
