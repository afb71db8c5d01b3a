"""Kubernetes objects -> records: moved to sources/kubernetes.py (the Kubernetes half of the
record sources); these names stay importable from here."""

from sources.kubernetes import (  # noqa: F401
    OWNER,
    SERVICE_NAME_LABEL,
    is_headless,
    object_key,
    probe_ports,
    ready_endpoints,
    service_domain,
    service_records,
    slice_service,
)
from sources.want import Want  # noqa: F401
