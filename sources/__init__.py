"""Record sources: outside systems whose objects become records in etcd.

One reconciler (reconciler.py, planning in planner.py; holders.py for daemons without the
API's zone mirror) writes for every source; each source's
protocol code lives in its own module: kubernetes.py (Services and EndpointSlices),
cloudstack.py (virtual machines and CloudStack's event bus). The daemons that feed them are
elsewhere: the Kubernetes sync in kubeapi/kubesync.py, `skydns-cloudstack` in cloudstack/.
"""
