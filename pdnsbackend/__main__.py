"""`python -m pdnsbackend`: the same as `skydns-pdns-backend`."""

import sys

from .server import main

sys.exit(main())
