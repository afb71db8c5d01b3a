# One image for every skydns program: give the program as the command.
#   docker build -t skydns .
#   docker run --rm skydns skydns --version
#   docker run -v /etc/skydns:/etc/skydns:ro -p 53:53/udp -p 53:53/tcp \
#       skydns skydns --config-file /etc/skydns/skydns.conf
#   docker run ... skydns skydns-kubeapi --config-file /etc/skydns/skydns-api.conf
# (skydns-scanner's ICMP probes need CAP_NET_RAW: --cap-add NET_RAW.)

# Build stage: the package and its dependencies as wheels; nothing of it but them ships.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY skydns/ skydns/
COPY dnsserver/ dnsserver/
COPY pdnsbackend/ pdnsbackend/
COPY scanner/ scanner/
COPY scheduler/ scheduler/
COPY kubeapi/ kubeapi/
COPY apicmd/ apicmd/
COPY devup/ devup/
COPY janitor/ janitor/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels skydns \
    && rm -rf /wheels \
    && useradd --system --no-create-home --home-dir /var/lib/skydns \
       --shell /usr/sbin/nologin skydns
COPY etc/ /etc/skydns/
USER skydns
# The DNS port 53 needs CAP_NET_BIND_SERVICE (docker grants it by default), or set
# [Dns] dns-addr to a high port.
EXPOSE 53/udp 53/tcp 9001/tcp 9600/tcp
CMD ["skydns", "--config-file", "/etc/skydns/skydns.conf"]
