"""The zone: state, index, answer rules, the zone as served, NOTIFY, the etcd sync (README.md)."""
