"""put/get/txn/lease/watch/lock through OpenStack's etcd3gw (a JSON-gateway client, unmodified)
against the members named on the command line (host:port ...), each operation on a member other
than the one before it. Prints one JSON object of results; tests/tests/json_gateway.rs runs it
against etcd and wasmraft and compares."""

import json
import sys
import threading
import time

from etcd3gw.client import Etcd3Client


def client(endpoint):
    host, port = endpoint.rsplit(":", 1)
    return Etcd3Client(host=host, port=int(port), protocol="http", timeout=10)


def main():
    a, b, c = [client(e) for e in (sys.argv[1:] * 3)[:3]]
    out = {}
    out["api_path"] = a.api_path
    out["put"] = a.put("foo", "bar")
    out["get_elsewhere"] = [repr(v) for v in b.get("foo")]
    out["create_existing"] = c.create("foo", "x")
    out["create_new"] = c.create("new", "v")
    out["replace_ok"] = a.replace("foo", "bar", "baz")
    out["replace_stale"] = b.replace("foo", "bar", "qux")
    out["get_after_replace"] = [repr(v) for v in c.get("foo")]
    out["prefix"] = sorted(repr(v) for v, _ in a.get_prefix("ne"))
    out["delete"] = b.delete("new")
    out["delete_again"] = b.delete("new")

    lease = a.lease(ttl=30)
    out["lease_ttl_in_range"] = 0 < lease.ttl() <= 30
    b.put("leased", "x", lease=lease)
    out["lease_keys"] = [repr(k) for k in lease.keys()]
    out["lease_refresh"] = lease.refresh()
    out["lease_revoke"] = lease.revoke()
    out["after_revoke"] = c.get("leased")
    out["refresh_revoked"] = lease.refresh()

    events, cancel = c.watch("w", prev_kv=True)
    got = []

    def collect():
        for event in events:
            got.append(event)
            if len(got) == 2:
                return

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    time.sleep(1)  # the watch is created before the writes
    a.put("w", "1")
    b.delete("w")
    reader.join(timeout=10)
    cancel()
    out["watch"] = [
        {"type": e.get("type", "PUT"), "key": repr(e["kv"]["key"]), "value": repr(e["kv"].get("value"))}
        for e in got
    ]

    first = a.lock("res", ttl=30)
    out["lock_first"] = first.acquire()
    second = b.lock("res", ttl=30)
    out["lock_second_while_held"] = second.acquire()
    out["lock_first_held"] = first.is_acquired()
    out["lock_first_release"] = first.release()
    out["lock_second_after"] = second.acquire()
    out["lock_second_release"] = second.release()
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
