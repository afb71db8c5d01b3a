"""The DNS wire format: parsing untrusted queries, rendering, TSIG, dnstap encodings (README.md)."""
