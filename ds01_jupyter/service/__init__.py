"""ds01d: a root service that acts for each caller, who needs no Docker access.

A user in the docker group is root on the host. ``ds01d`` holds the Docker
socket instead and serves a unix socket anyone may connect to; who calls is
read from the kernel (``SO_PEERCRED``), never from the request, and the core
then acts for that user only. The CLI (:mod:`.client`) talks to it when the
socket is there and to Docker directly otherwise, with the same output.

- :mod:`.protocol`: the wire format (JSON lines), the operations a caller may
  ask for with their parameters, and how results and errors travel.
- :mod:`.server`: the service itself (``ds01d``).
- :mod:`.sessions`: interactive commands, whose Docker connection is handed to
  the client (``SCM_RIGHTS``) and pumped there (:mod:`.attach`).
- :mod:`.config`: the admin's settings of the service.
- :mod:`.address`: where ds01d listens and how a client names another socket (or none).
"""
