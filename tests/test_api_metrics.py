"""GET /metrics of the real API process: request counters by route template and code, the
latency histogram, and etcd errors and retries counted while etcd does not answer."""

from prometheus_client.parser import text_string_to_metric_families

from apitest import KubeApi


def scrape(api: KubeApi) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape, without a token."""
    status, text = api.request("GET", "/metrics", token=None)
    assert status == 200, text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def requests(samples, method: str, route: str, code: int) -> float:
    key = ("skydns_api_requests_total",
           (("code", str(code)), ("method", method), ("route", route)))
    return samples.get(key, 0)


def test_request_counters(etcd):
    api = KubeApi(etcd.endpoint).start()
    try:
        assert api.request("GET", "/skydns/api")[0] == 200
        assert api.request("GET", "/skydns/api")[0] == 200
        assert api.request("GET", "/skydns/api", token=None)[0] == 401
        assert api.request("POST", "/skydns/api/cctv2", {"type": "A", "ip": ["1.2.3.4"]})[0] \
            == 400
        assert api.request("POST", "/skydns/api/cctv2", {"type": "A", "ips": ["1.2.3.4"]})[0] \
            == 201
        assert api.request("GET", "/skydns/api/nothing-here")[0] == 404
        assert api.request("GET", "/no/such/path/12345")[0] == 404
        assert api.request("PATCH", "/skydns/api/x")[0] == 405
        samples = scrape(api)
        assert requests(samples, "GET", "/skydns/api", 200) == 2
        assert requests(samples, "GET", "/skydns/api", 401) == 1
        assert requests(samples, "POST", "/skydns/api/{domain}", 400) == 1
        assert requests(samples, "POST", "/skydns/api/{domain}", 201) == 1
        assert requests(samples, "GET", "/skydns/api/{domain}", 404) == 1
        assert requests(samples, "GET", "unmatched", 404) == 1
        assert requests(samples, "PATCH", "/skydns/api/{domain}", 405) == 1
        # Raw paths never become labels.
        assert not any("nothing-here" in str(key) or "12345" in str(key) for key in samples)
        count = ("skydns_api_request_duration_seconds_count",
                 (("method", "GET"), ("route", "/skydns/api")))
        assert samples[count] == 3
        assert samples[("skydns_api_txn_conflicts_total", ())] == 0
        assert samples[("skydns_api_etcd_retries_total", ())] == 0
        assert samples[("skydns_api_status_clients", ())] == 0
        assert samples[("skydns_api_status_watch_connected", (("source", "records"),))] in (0, 1)
        # The scrape itself is counted from the next one on.
        assert requests(scrape(api), "GET", "/metrics", 200) >= 1
    finally:
        assert api.stop() == 0


def test_etcd_errors_and_retries(etcd):
    api = KubeApi(etcd.endpoint).start()
    try:
        etcd.pause()  # etcd stops answering without closing connections: calls time out
        try:
            status, text = api.request("POST", "/skydns/api/cctv2",
                                       {"type": "A", "ips": ["1.2.3.4"]})
        finally:
            etcd.resume()
        assert status == 503, text
        samples = scrape(api)
        assert requests(samples, "POST", "/skydns/api/{domain}", 503) == 1
        errors = {labels: value for (name, labels), value in samples.items()
                  if name == "skydns_api_etcd_errors_total"}
        assert sum(errors.values()) >= 1, errors
        assert all(dict(labels)["call"] in ("Txn", "Status") for labels in errors)
        assert samples[("skydns_api_etcd_retries_total", ())] >= 1
    finally:
        assert api.stop() == 0


def test_unknown_methods_share_one_label():
    from kubeapi.metrics import ApiMetrics

    metrics = ApiMetrics()
    metrics.observe("BREW", "unmatched", 400, 0.001)
    metrics.observe("GET", "/skydns/status/events", 200, 30.0)
    text = metrics.render().decode()
    assert 'skydns_api_requests_total{code="400",method="other",route="unmatched"} 1.0' in text
    # A stream's lifetime is no latency: the histogram leaves the event stream out.
    durations = [line for line in text.splitlines()
                 if line.startswith("skydns_api_request_duration_seconds_count")]
    assert durations == ['skydns_api_request_duration_seconds_count{method="other",'
                         'route="unmatched"} 1.0']
