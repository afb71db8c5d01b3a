"""`skydns up`: the whole suite on this machine (etcd, skydns, scanners, schedulers, API), for
a demo or a quick try. A launcher of the other parts, none of which imports it."""
