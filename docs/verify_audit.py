#!/usr/bin/env python3
"""Checks an audit export of `ownership` on its own, with the Python standard library.

    ownership audit export > audit.jsonl
    ownership audit chain-key --json > chain-keys.json   # only for a keyed chain
    python3 docs/verify_audit.py audit.jsonl [--keys chain-keys.json]

Exits 0 when the export is intact, 3 when it is not (naming the first broken event),
2 when the input cannot be read. The rules are the ones `ownership audit verify --file`
applies (docs/security.md, "Audit log"); this script shares no code with it.
"""

import argparse
import hashlib
import hmac
import json
import struct
import sys

GENESIS = "0" * 64


def field(out, data):
    """A length-prefixed field: the byte count as a big-endian u64, then the bytes."""
    out += struct.pack(">Q", len(data))
    out += data


def canonical(event, keyed):
    """The canonical bytes of an event (v2 for keyed links, v1 for unkeyed ones)."""
    out = bytearray()
    field(out, b"ownership-audit-v2" if keyed else b"ownership-audit-v1")
    field(out, struct.pack(">q", event["seq"]))
    # The time in microseconds as a 128-bit big-endian signed integer.
    field(out, event["at_micros"].to_bytes(16, "big", signed=True))
    field(out, event["actor"].encode())
    field(out, (event["owner_id"] or "").encode())
    if keyed:
        field(out, (event["owner_uid"] or "").encode())
    field(out, event["action"].encode())
    field(out, event["target"].encode())
    field(out, event["details"].encode())
    return bytes(out)


def link(event, keys):
    """The hash this event should carry, or an error message."""
    prev = bytes.fromhex(event["prev_hash"])
    version = event.get("key_version")
    if version is None:
        return hashlib.sha256(prev + canonical(event, False)).hexdigest(), None
    key = keys.get(version)
    if key is None:
        return None, f"keyed under master key version {version}, whose chain key was not given"
    return hmac.new(key, prev + canonical(event, True), hashlib.sha256).hexdigest(), None


class Broken(Exception):
    def __init__(self, seq, reason):
        super().__init__(f"broken at event {seq}: {reason}")


def check_one(event, prev, keys, keyed_seen):
    if event["prev_hash"] != prev:
        raise Broken(event["seq"], "previous-hash link does not match")
    if event.get("key_version") is None and keyed_seen:
        raise Broken(event["seq"], "an unkeyed event follows a keyed one")
    expected, problem = link(event, keys)
    if problem:
        raise Broken(event["seq"], problem)
    if not hmac.compare_digest(expected, event["hash"]):
        raise Broken(event["seq"], "content does not match its hash")


def verify(header, events, keys):
    since = header["since"]
    head = header["head"]
    keyed_seen = False
    if header.get("owner") is not None:
        # One owner's events: each link holds on its own, in increasing order.
        last = since
        for e in events:
            if e["seq"] <= last:
                raise Broken(e["seq"], "out of order")
            check_one(e, e["prev_hash"], keys, keyed_seen)
            keyed_seen |= e.get("key_version") is not None
            last = e["seq"]
        return len(events)
    expected_seq = since + 1
    prev = GENESIS if since == 0 or not events else events[0]["prev_hash"]
    for e in events:
        if e["seq"] != expected_seq:
            raise Broken(expected_seq, f"expected event {expected_seq}, found {e['seq']}")
        check_one(e, prev, keys, keyed_seen)
        keyed_seen |= e.get("key_version") is not None
        prev = e["hash"]
        expected_seq += 1
    last_seq = events[-1]["seq"] if events else since
    if head["seq"] != last_seq or (events and head["hash"] != events[-1]["hash"]):
        raise Broken(last_seq + 1, f"the export ends at event {last_seq}, but the recorded head is event {head['seq']}")
    if keys and events and events[-1].get("key_version") is None:
        raise Broken(last_seq, "the newest event is unkeyed although a chain key was given")
    return len(events)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", help="a file written by `ownership audit export`")
    parser.add_argument("--keys", help="the JSON `ownership audit chain-key --json` printed")
    args = parser.parse_args()
    try:
        keys = {}
        if args.keys:
            with open(args.keys, encoding="utf-8") as f:
                keys = {k["version"]: bytes.fromhex(k["key"]) for k in json.load(f)["keys"]}
        with open(args.export, encoding="utf-8") as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
        if not lines:
            raise ValueError("empty file")
        header = json.loads(lines[0])
        if header.get("format") != "ownership-audit-export/v1":
            raise ValueError("not an audit export (no header)")
        events = [json.loads(line) for line in lines[1:]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"cannot read the input: {e}", file=sys.stderr)
        return 2
    try:
        n = verify(header, events, keys)
    except Broken as e:
        print(f"audit export {e}")
        return 3
    except (KeyError, TypeError, ValueError) as e:
        print(f"audit export malformed: {e}")
        return 3
    print(f"audit export intact ({n} events)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
