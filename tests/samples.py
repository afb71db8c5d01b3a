"""The sample records of EXAMPLES.md (zone example.test.), shared by the tests of the answer
rules, the PowerDNS protocol and PowerDNS end to end: one copy, so they test one zone.

A test that needs more shapes adds them: `RECORDS = {**EXAMPLES, key: value}`.
"""

from __future__ import annotations

EXAMPLES = {
    "/skydns/test/example/api/i1": {"host": "10.0.0.1", "ttl": 60},
    "/skydns/test/example/api/i2": {"host": "10.0.0.2", "ttl": 60},
    "/skydns/test/example/west/db/1": {"host": "10.0.1.1", "port": 5432, "priority": 10,
                                       "weight": 50},
    "/skydns/test/example/west/db/2": {"host": "10.0.1.2", "port": 5432, "priority": 10,
                                       "weight": 150},
    "/skydns/test/example/west/db/3": {"host": "db3.example.test", "port": 5432, "priority": 20},
    "/skydns/test/example/db3/x": {"host": "10.0.1.3"},
    "/skydns/test/example/www/x": {"host": "api.example.test"},
    "/skydns/test/example/motd/x": {"text": "maintenance at 02:00"},
    "/skydns/arpa/in-addr/10/0/0/1": {"host": "api.example.test"},
    "/skydns/test/example/dns/ns/ns1": {"host": "10.0.9.1"},
    "/skydns/test/example/v6/a": {"host": "2001:db8::1"},
    "/skydns/test/example/mail/mx1": {"host": "10.0.2.1", "mail": True, "priority": 5},
}
