"""ICMP on the process's shared sockets: the low-level layer under the ICMP prober.

Why shared: a raw ICMP socket receives a copy of every ICMP packet on the host, so one raw
socket per probe costs O(probes²) under concurrency and loses replies. One long-lived socket
per address family (sockets.py) is read by the event loop, and its endpoint (endpoint.py)
hands every reply to the probe that sent the request, matched on identifier, sequence
number, source address and a random per-probe payload prefix (packets.py), so late, stray
and forged replies are never counted.

Why kernel timestamps: the RTT is the kernel's receive time (SO_TIMESTAMPNS) minus the time
taken right before sendmsg, so a busy event loop does not inflate it.

Linux only: the socket options used here (linux.py) are Linux's.
"""
