#!/usr/bin/env python3
"""Delays every packet of an NFQUEUE by a fixed time before accepting it: a stand-in for
`tc netem`, which this kernel lacks. Run inside a network namespace whose loopback traffic
an iptables rule sends to the queue. Packets are held concurrently (a timer each), so a
burst is delayed as a whole rather than one packet after another.
Usage: netem_delay.py QUEUE_NUM DELAY_MS"""
import sys
import threading

from netfilterqueue import NetfilterQueue

queue_num, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000.0


def hold(packet):
    threading.Timer(delay, packet.accept).start()


nfq = NetfilterQueue()
nfq.bind(queue_num, hold, max_len=4096)
try:
    nfq.run()
finally:
    nfq.unbind()
