"""DNSSEC online signing, pure: key files, canonical wire form, RRSIGs, NSEC3 white lies, and
the layer that turns an assembled unsigned reply into a signed one. No sockets, no etcd."""
