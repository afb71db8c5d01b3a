"""skydns-janitor: purges the names a change in etcd reaches from PowerDNS Recursor caches."""
