"""Where the hub and its containers meet: the host's address on the Docker bridge."""

from __future__ import annotations


def bridge_ip(network: str = "bridge", docker_url: str | None = None) -> str:
    """The host's address on a Docker network: where containers reach the hub (``c.JupyterHub.hub_connect_ip``)."""
    import ipaddress

    import docker

    try:
        client = (
            docker.APIClient(base_url=docker_url) if docker_url else docker.APIClient(**docker.utils.kwargs_from_env())
        )
        try:
            config = client.inspect_network(network)["IPAM"]["Config"][0]
        finally:
            client.close()
    except docker.errors.DockerException as err:
        # Called while the hub reads its config: a clear exit, not a traceback (nor a config half read).
        raise SystemExit(f"[ds01] The hub does not start: the Docker engine cannot be reached ({err}).\n"
                         "  hint: Start it (`systemctl start docker`) and check docker_url / DOCKER_HOST.") from None
    # The default bridge often names no gateway: it is then the subnet's first address.
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))
